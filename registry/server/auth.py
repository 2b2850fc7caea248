"""Who sent this request: API tokens (Bearer or Basic), passwords (Basic), or the UI's session.

Tokens work as `Authorization: Bearer TOKEN` and as HTTP Basic with the token as password
(any user name: rkt's and docker's credential files speak Basic). A Basic password that is
not a token is checked as the user's password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from flask import current_app, request, session

from registry.server.context import config, db
from registry.server.models import ApiToken, User
from registry.server.services.actor import Actor
from registry.server.services.errors import Unauthorized
from registry.server.services.throttle import ThrottlePolicy
from registry.server.services.tokens import TOKEN_PREFIX, authenticate_token
from registry.server.services.users import authenticate

SESSION_USER_KEY = "user_id"
SESSION_PROOF_KEY = "auth_proof"


def session_proof(user: User) -> str:
    """Binds a login session to the user's current password hash: changing the password ends
    every other session (the cookie is signed, not stored server-side, so it cannot be revoked
    otherwise). Logging out clears the browser's cookie; a copy taken earlier stays valid until
    the password changes (a server-side session generation would need a schema change)."""
    return hmac.new(current_app.secret_key.encode(),  # type: ignore[union-attr]
                    f"{user.id}:{user.password_hash}".encode(), hashlib.sha256).hexdigest()


def bind_session(user: User) -> None:
    """Sign `user` in: the session holds the id and the proof `session_user` checks."""
    session[SESSION_USER_KEY] = user.id
    session[SESSION_PROOF_KEY] = session_proof(user)


def session_user() -> User | None:
    """The user of the login session, the one rule for every session-authenticated path: a
    session naming a deleted user, or made before the user's password changed, is no session
    (and is cleared)."""
    user_id = session.get(SESSION_USER_KEY)
    user = db().get(User, user_id) if isinstance(user_id, int) else None
    proof = session.get(SESSION_PROOF_KEY)
    if user is not None and not (isinstance(proof, str) and
                                 hmac.compare_digest(proof, session_proof(user))):
        user = None
    if user is None and (user_id is not None or proof is not None):
        session.pop(SESSION_USER_KEY, None)
        session.pop(SESSION_PROOF_KEY, None)
    return user


def throttle_policy() -> ThrottlePolicy:
    """The brute-force delays configured for this registry (services.throttle)."""
    settings = config()
    return ThrottlePolicy(free_attempts=settings.login_free_attempts,
                          base_delay=settings.login_base_delay,
                          max_delay=settings.login_max_delay, window=settings.login_window)


def _credentials_user() -> tuple[bool, User | None, ApiToken | None]:
    """(credentials given?, the user they identify or None if wrong, the API token used)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if not header:
        return False, None, None
    address, policy = request.remote_addr, throttle_policy()
    if scheme == "bearer":
        token = authenticate_token(db(), value, address, policy=policy)
        return True, token.user if token else None, token
    if scheme == "basic":
        try:
            username, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return True, None, None
        if password.startswith(TOKEN_PREFIX):
            token = authenticate_token(db(), password, address, policy=policy)
            user = token.user if token else None
            # A user name other than the token's owner is a mistake worth refusing.
            if user is not None and username and username not in (user.username, "token"):
                return True, None, None
            return True, user, token
        return True, authenticate(db(), username, password, address=address,
                                  policy=policy), None
    return True, None, None


def api_actor(*, required: bool = True) -> Actor:
    """The actor of an API call: bad credentials are always a 401; none at all is anonymous
    unless `required`. A token's scope travels with the actor (services.access applies it)."""
    given, user, token = _credentials_user()
    if given and user is None:
        raise Unauthorized("invalid credentials: unknown, expired or revoked token, or wrong "
                           "password", code="invalid-token")
    if user is None and required:
        raise Unauthorized("authentication required: pass an API token "
                           "(Authorization: Bearer TOKEN; `pyrkt-registry token create USER`)",
                           code="missing-token")
    return Actor(user=user, remote_addr=request.remote_addr, token=token)


def reader_actor() -> Actor:
    """The actor of a download or a page: wrong credentials count as anonymous, so a private
    repository answers the same 404 to every outsider; the web UI's login session counts too."""
    _given, user, token = _credentials_user()
    if user is None:
        token = None
        user = session_user()
    return Actor(user=user, remote_addr=request.remote_addr, token=token)
