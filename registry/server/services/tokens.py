"""API tokens for CI and `pyrkt push`: shown once, stored as SHA-256, revocable."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.server.models import ApiToken, User, utcnow

from . import audit
from .actor import Actor
from .errors import Forbidden, NotFound
from .users import get_user

TOKEN_PREFIX = "pyrkt_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session, actor: Actor, username: str, description: str = ""
) -> tuple[ApiToken, str]:
    """A new token for `username`; returns the row and the plain token (never stored)."""
    user = get_user(session, username)
    _require_self_or_admin(actor, user)
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user=user, description=description[:255], token_hash=_digest(plain),
                     hint=plain[: len(TOKEN_PREFIX) + 4])
    session.add(token)
    session.flush()
    audit.record(session, actor, "token.create", username, token_id=token.id,
                 description=description or None)
    session.commit()
    return token, plain


def list_tokens(session: Session, actor: Actor, username: str) -> Sequence[ApiToken]:
    user = get_user(session, username)
    _require_self_or_admin(actor, user)
    return session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    ).all()


def revoke_token(session: Session, actor: Actor, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no token with id {token_id}", code="token-not-found")
    _require_self_or_admin(actor, token.user)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(session, actor, "token.revoke", token.user.username, token_id=token.id)
        session.commit()
    return token


def authenticate_token(session: Session, plain: str) -> User | None:
    """The token's user, or None for an unknown or revoked token."""
    if not plain:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(plain)))
    if token is None or token.revoked_at is not None:
        return None
    return token.user


def _require_self_or_admin(actor: Actor, user: User) -> None:
    if actor.is_site_admin or (actor.user is not None and actor.user.id == user.id):
        return
    raise Forbidden("only an administrator may manage another user's tokens")
