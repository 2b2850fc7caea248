"""API tokens for CI and `pyrkt push`: shown once, stored as SHA-256, scoped, expiring,
revocable.

A token's scope caps what its user may do with it, never adds to it: `read` (see and fetch),
`push` (also upload, delete versions, move `latest`, push over /v2/), `admin` (everything the
user may do, settings and roles included). A token may be limited to one repository: it then
reaches no other (public repositories stay readable, as they are to anyone). Only a token
with scope admin over every repository can do registry-wide things (users, tokens, robots,
creating repositories, gc, the audit log), and only if its user is an administrator.

Expiry: 90 days unless asked otherwise (`expires_in_days=None`: never). Last use: the time
and address are written on use, at most once a minute per token, so a busy CI token costs
one small UPDATE a minute rather than one per request.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from registry.server.models import ApiToken, Repository, User, aware, utcnow

from . import audit, throttle
from .actor import SCOPE_ROLES, Actor
from .errors import BadRequest, Forbidden, NotFound
from .users import get_user

TOKEN_PREFIX = "pyrkt_"
SCOPES = tuple(SCOPE_ROLES)
DEFAULT_EXPIRY_DAYS = 90
MAX_EXPIRY_DAYS = 3650
LAST_USED_EVERY = timedelta(minutes=1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scope(value: str) -> str:
    if value not in SCOPES:
        raise BadRequest(f"unknown token scope {value!r}: use read, push or admin",
                         code="bad-scope")
    return value


def parse_expiry(value: str | int | None) -> int | None:
    """Days until expiry from a form, flag or JSON value: a number, or "never"/0/None."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("never", "0", "")):
        return None
    try:
        days = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"bad expiry {value!r}: a number of days (1-{MAX_EXPIRY_DAYS}) or "
                         "'never'", code="bad-expiry") from None
    if days == 0:
        return None
    if not 1 <= days <= MAX_EXPIRY_DAYS:
        raise BadRequest(f"bad expiry {days}: between 1 and {MAX_EXPIRY_DAYS} days, or 'never'",
                         code="bad-expiry")
    return days


def create_token(
    session: Session, actor: Actor, username: str, description: str = "", *,
    scope: str = "admin", repository: str | None = None,
    expires_in_days: int | None = DEFAULT_EXPIRY_DAYS,
) -> tuple[ApiToken, str]:
    """A new token for `username`; returns the row and the plain token (never stored)."""
    user = get_user(session, username)
    _require_manager(actor, user)
    parse_scope(scope)
    repository_row = None
    if repository:
        repository_row = session.scalar(select(Repository).where(Repository.name == repository))
        if repository_row is None:
            raise NotFound(f"repository {repository!r} not found: a token can only be limited "
                           "to an existing repository", code="repository-not-found")
    days = parse_expiry(expires_in_days)
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user=user, description=description[:255], token_hash=_digest(plain),
                     hint=plain[: len(TOKEN_PREFIX) + 4], scope=scope,
                     repository=repository_row,
                     expires_at=utcnow() + timedelta(days=days) if days else None)
    session.add(token)
    session.flush()
    audit.record(session, actor, "token.create", username, token_id=token.id,
                 description=description or None, scope=scope, repository=repository or None,
                 expires=f"{token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "never")
    session.commit()
    return token, plain


def list_tokens(session: Session, actor: Actor, username: str) -> Sequence[ApiToken]:
    user = get_user(session, username)
    _require_manager(actor, user)
    return session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    ).all()


def revoke_token(session: Session, actor: Actor, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no token with id {token_id}", code="token-not-found")
    _require_manager(actor, token.user)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(session, actor, "token.revoke", token.user.username, token_id=token.id)
        session.commit()
    return token


def state_of(token: ApiToken, now: datetime | None = None) -> str:
    """"active", "expired" or "revoked" (what listings show)."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and aware(token.expires_at) <= (now or utcnow()):
        return "expired"
    return "active"


def authenticate_token(session: Session, plain: str, remote_addr: str | None = None, *,
                       policy: throttle.ThrottlePolicy = throttle.DEFAULT_POLICY
                       ) -> ApiToken | None:
    """The token (its user loaded), or None for an unknown, revoked or expired one. Notes the
    use (time and address) when the last note is older than LAST_USED_EVERY. Wrong tokens
    count against the client address (services.throttle): a guessing address gets
    `Throttled`, before any lookup."""
    throttle.check_address(session, remote_addr)
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(plain))) \
        if plain else None
    now = utcnow()
    if token is None or state_of(token, now) != "active":
        throttle.token_guess_failed(session, remote_addr,
                                    Actor(user=None, remote_addr=remote_addr), policy)
        return None
    stale = now - LAST_USED_EVERY
    if token.last_used_at is None or aware(token.last_used_at) < stale:
        # Conditional, so concurrent requests of one token write once; committed at once (the
        # request has changed nothing yet) so no lock is held through a download.
        session.execute(update(ApiToken).where(
            ApiToken.id == token.id,
            ApiToken.last_used_at.is_(None) | (ApiToken.last_used_at < stale))
            .values(last_used_at=now, last_used_addr=(remote_addr or "")[:64] or None)
            .execution_options(synchronize_session=False))
        session.commit()
    return token


def _require_manager(actor: Actor, user: User) -> None:
    """Tokens are managed by administrators, or by their own (human) user signed in with a
    password, the UI or an unrestricted token: a scoped token cannot mint a wider one."""
    if actor.is_site_admin:
        return
    if actor.user is not None and actor.user.id == user.id and not user.is_robot:
        if actor.full_power:
            return
        raise Forbidden("this token's scope does not allow managing tokens: use a token with "
                        "scope admin for every repository, or the web UI", code="token-scope")
    if user.is_robot:
        raise Forbidden("only an administrator may manage a robot account's tokens")
    raise Forbidden("only an administrator may manage another user's tokens")
