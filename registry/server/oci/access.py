"""Who is calling /v2/ and what they may do with a repository.

Credentials: a bearer token from `/v2/token` (its grants cap what the caller may do), or
the server's own credentials directly (an API token as Bearer, Basic user:password or
user:token), or none (anonymous: pulls of public repositories only). Roles are checked live
on every request as well, so a revoked role takes effect before a token expires.

Refusals follow the distribution spec without leaking: an anonymous caller (or a token
lacking the action) gets 401 with a challenge naming the scope, for a private repository
and a missing one alike; a signed-in user who cannot read a repository gets the same
NAME_UNKNOWN as for a missing one; one who can read but not write gets DENIED.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import request
from sqlalchemy import select

from registry.server.auth import api_actor
from registry.server.context import config, db
from registry.server.models import ApiToken, Repository, Role, User
from registry.server.services.access import can_read, has_role
from registry.server.services.actor import Actor
from registry.server.services.errors import Unauthorized
from registry.server.services.tokens import state_of

from . import tokens
from .errors import OciError, denied, name_unknown
from .names import appc_name

TOKEN_PATH = "/v2/token"


@dataclass(frozen=True)
class Caller:
    actor: Actor
    # None: credentials given directly, the roles alone decide.
    grant: tokens.Grant | None = None


def service_name() -> str:
    return urlsplit(config().base_url).netloc


def challenge(scope: str | None = None) -> dict[str, str]:
    value = f'Bearer realm="{config().base_url}{TOKEN_PATH}",service="{service_name()}"'
    if scope:
        value += f',scope="{scope}"'
    return {"WWW-Authenticate": value}


def unauthorized(message: str, scope: str | None = None) -> OciError:
    return OciError(message, status=401, code="UNAUTHORIZED", headers=challenge(scope))


def secret() -> str:
    return config().secret_key or ""


def current_caller() -> Caller:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip().startswith(tokens.PREFIX):
        grant = tokens.verify(secret(), value.strip())
        if grant is None:
            raise unauthorized("the bearer token is invalid or expired: ask the token "
                               "endpoint for a new one")
        user = db().get(User, grant.user_id) if grant.user_id is not None else None
        if grant.user_id is not None and user is None:
            raise unauthorized("the bearer token's user no longer exists")
        api_token = db().get(ApiToken, grant.token_id) if grant.token_id is not None else None
        if grant.token_id is not None and (api_token is None or api_token.user_id != grant.user_id
                                           or state_of(api_token) != "active"):
            raise unauthorized("the API token this bearer token came from is revoked or "
                               "expired: sign in again")
        return Caller(Actor(user=user, remote_addr=request.remote_addr, token=api_token), grant)
    try:
        return Caller(api_actor(required=False))
    except Unauthorized as error:
        raise unauthorized(error.message) from None


def live_allows(actor: Actor, repository: Repository | None, action: str) -> bool:
    """What the registry's roles allow right now. A missing repository: only site admins, who
    may create it by pushing (and whose pulls then meet an honest NAME_UNKNOWN)."""
    session = db()
    if repository is None:
        return actor.is_site_admin
    if action == "pull":
        return can_read(session, actor, repository)
    return has_role(session, actor, repository, Role.WRITE)


def find_repository(oci: str) -> Repository | None:
    name = appc_name(oci, config().domains)
    return db().scalar(select(Repository).where(Repository.name == name))


def authorize(caller: Caller, oci: str, action: str) -> Repository | None:
    """The repository if the caller may `action` on it; None only for a push that will create
    it. Raises the refusal the module docstring describes otherwise."""
    repository = find_repository(oci)
    granted = caller.grant is None or caller.grant.allows(oci, action)
    if granted and live_allows(caller.actor, repository, action):
        return repository
    scope = f"repository:{oci}:{action}"
    if not granted or caller.actor.is_anonymous:
        raise unauthorized(f"authentication required to {action} {oci!r}", scope)
    if repository is None or not can_read(db(), caller.actor, repository):
        raise name_unknown(oci)
    raise denied(f"you need the write role on {oci!r} to {action}")


def existing(caller: Caller, oci: str, action: str) -> Repository:
    """Like `authorize`, for actions that need the repository to exist already."""
    repository = authorize(caller, oci, action)
    if repository is None:
        raise name_unknown(oci)
    return repository


def grants_for(actor: Actor, scopes: list[tokens.Scope]) -> dict[str, set[str]]:
    """The subset of the requested scopes the actor holds (the token endpoint's answer)."""
    access: dict[str, set[str]] = {}
    for scope in scopes:
        if scope.kind == "registry":
            if scope.name == "catalog":
                access.setdefault("registry:catalog", set()).add("*")
            continue
        try:
            repository = find_repository(scope.name)
        except OciError:
            continue
        wanted = tokens.ACTIONS if "*" in scope.actions else scope.actions
        held = {a for a in wanted if a in tokens.ACTIONS and live_allows(actor, repository, a)}
        if held:
            access.setdefault(scope.name, set()).update(held)
    return access
