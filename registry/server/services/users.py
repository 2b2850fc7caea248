"""Users and passwords (scrypt from hashlib with a per-user salt: no extra dependency)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.cooperative import run_native
from registry.server.models import User

from . import audit, throttle
from .actor import Actor
from .errors import BadRequest, Conflict, Forbidden, NotFound

# scrypt cost: 2**15 * 8 * 128 bytes = 32 MiB and ~0.1 s per check; OWASP's minimum is 2**17
# with r=8 at 128 MiB, too much for gunicorn workers on a small host, so 2**15 balances it.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = run_native(hashlib.scrypt, password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=_SCRYPT_MAXMEM, dklen=32)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)])


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest + "==")
        # In a real thread under gevent: scrypt releases the GIL, the worker's other
        # connections go on meanwhile.
        actual = run_native(hashlib.scrypt, password.encode(), salt=base64.urlsafe_b64decode(salt + "=="),
                                n=int(n), r=int(r), p=int(p), maxmem=_SCRYPT_MAXMEM,
                                dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user named {username!r}", code="user-not-found")
    return user


def list_users(session: Session, actor: Actor, *, robots: bool = False) -> Sequence[User]:
    """The people (or, with `robots`, the robot accounts), by name."""
    _require_site_admin(actor, "list users")
    return session.scalars(select(User).where(User.is_robot.is_(robots))
                           .order_by(User.username)).all()


def create_user(
    session: Session, actor: Actor, username: str, password: str, *, is_admin: bool = False
) -> User:
    _require_site_admin(actor, "create users")
    if not USERNAME_RE.match(username):
        raise BadRequest(
            f"bad username {username!r}: use 1-64 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit", code="bad-username")
    _check_password_strength(password)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} already exists", code="user-exists")
    user = User(username=username, password_hash=hash_password(password), is_admin=is_admin)
    session.add(user)
    audit.record(session, actor, "user.create", username, admin=is_admin)
    session.commit()
    return user


def set_password(session: Session, actor: Actor, username: str, password: str) -> User:
    user = get_user(session, username)
    if not actor.is_site_admin and (actor.user is None or actor.user.id != user.id
                                    or not actor.full_power):
        raise Forbidden("only an administrator may change another user's password")
    _refuse_robot(user, "has no password: it signs in with its tokens only")
    _check_password_strength(password)
    user.password_hash = hash_password(password)
    audit.record(session, actor, "user.password", username)
    session.commit()
    return user


def set_admin(session: Session, actor: Actor, username: str, is_admin: bool) -> User:
    _require_site_admin(actor, "change administrators")
    user = get_user(session, username)
    _refuse_robot(user, "cannot be an administrator: give it roles on repositories")
    user.is_admin = is_admin
    audit.record(session, actor, "user.admin", username, admin=is_admin)
    session.commit()
    return user


def delete_user(session: Session, actor: Actor, username: str) -> None:
    _require_site_admin(actor, "delete users")
    user = get_user(session, username)
    if actor.user is not None and actor.user.id == user.id:
        raise BadRequest("you cannot delete your own account", code="self-delete")
    session.delete(user)
    audit.record(session, actor, "user.delete", username)
    session.commit()


def authenticate(session: Session, username: str, password: str, *, address: str | None,
                 policy: throttle.ThrottlePolicy = throttle.DEFAULT_POLICY) -> User | None:
    """The user if the password is right; None otherwise (same cost either way).

    Throttled per account and per client `address` (services.throttle): while a delay runs
    this raises `Throttled` before any scrypt work."""
    attempt = throttle.begin_password_attempt(session, username, address, policy)
    user = session.scalar(select(User).where(User.username == username))
    if user is None or user.is_robot:
        # Robots have no password (tokens only). Spend the same time as a real check so timing does not reveal which names exist.
        check_password(password, _DUMMY_HASH)
        ok = False
    else:
        ok = check_password(password, user.password_hash)
    if ok:
        throttle.password_attempt_succeeded(session, attempt)
        return user
    throttle.password_attempt_failed(session, attempt, Actor(user=None, remote_addr=address),
                                     policy)
    return None


def _refuse_robot(user: User, why: str) -> None:
    if user.is_robot:
        raise BadRequest(f"{user.username} is a robot account and {why}", code="robot")


def _check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadRequest(f"password too short: use at least {MIN_PASSWORD_LENGTH} characters",
                         code="weak-password")


def _require_site_admin(actor: Actor, what: str) -> None:
    if not actor.is_site_admin:
        raise Forbidden(f"only an administrator may {what}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


_DUMMY_HASH = hash_password("not a real password")
