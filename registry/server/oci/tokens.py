"""Short-lived bearer tokens for the distribution API's token flow.

`GET /v2/token?service=...&scope=repository:team/app:pull,push` with HTTP Basic credentials
(a user's password or API token) answers a token granting the requested actions the caller
holds right now. A token is `oci.<payload>.<mac>`: base64url JSON (user id, expiry, grants)
and an HMAC-SHA256 under the registry's secret key, which every worker and every host of a
deployment share, so any of them can check it without a database lookup or shared state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field

PREFIX = "oci."
LIFETIME_SECONDS = 300
# Actions a client may ask for; "*" is expanded to all of them that the caller holds.
ACTIONS = ("pull", "push", "delete")
MAX_SCOPES = 32


@dataclass(frozen=True)
class Grant:
    user_id: int | None
    expires: int
    # OCI repository name -> granted actions; the catalog appears as "registry:catalog".
    access: dict[str, frozenset[str]] = field(default_factory=dict)
    # The API token the bearer token was issued for (None: a password): its revocation,
    # expiry and scope keep applying while the bearer token lives.
    token_id: int | None = None

    def allows(self, name: str, action: str) -> bool:
        return action in self.access.get(name, frozenset())


@dataclass(frozen=True)
class Scope:
    kind: str
    name: str
    actions: tuple[str, ...]


def parse_scopes(values: list[str]) -> list[Scope]:
    """`repository:NAME:pull,push` and `registry:catalog:*`; anything else is ignored, as the
    token spec asks of scopes a server does not understand."""
    scopes: list[Scope] = []
    for value in values:
        for item in value.split(" "):
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind in ("repository", "registry") and name and actions:
                scopes.append(Scope(kind, name, tuple(a for a in actions.split(",") if a)))
            if len(scopes) >= MAX_SCOPES:
                return scopes
    return scopes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), b"pyrkt-oci-token\0" + payload.encode(),
                         hashlib.sha256).digest())


def issue(secret: str, user_id: int | None, access: dict[str, set[str]],
          lifetime: int = LIFETIME_SECONDS, token_id: int | None = None) -> tuple[str, Grant]:
    expires = int(time.time()) + lifetime
    body = {"sub": user_id, "exp": expires, "access": {k: sorted(v) for k, v in access.items()},
            "tid": token_id}
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    grant = Grant(user_id, expires, {k: frozenset(v) for k, v in access.items()}, token_id)
    return f"{PREFIX}{payload}.{_mac(secret, payload)}", grant


def verify(secret: str, token: str) -> Grant | None:
    """The grant of a genuine, unexpired token; None otherwise."""
    if not token.startswith(PREFIX):
        return None
    payload, _, mac = token[len(PREFIX):].partition(".")
    if not payload or not hmac.compare_digest(mac, _mac(secret, payload)):
        return None
    try:
        body = json.loads(_unb64(payload))
        expires = int(body["exp"])
        user_id = body.get("sub")
        token_id = body.get("tid")
        access = {str(k): frozenset(str(a) for a in v) for k, v in body["access"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if expires < time.time():
        return None
    return Grant(user_id if isinstance(user_id, int) else None, expires, access,
                 token_id if isinstance(token_id, int) else None)
