"""Who may do what with a repository. Every view and the web UI ask here, nowhere else.

Unreadable repositories are reported exactly like missing ones (`NotFound`), so nobody learns
that a private repository exists without read access.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlalchemy.orm import Session

from registry.server.models import Repository, RepositoryRole, Role

from .actor import Actor
from .errors import Forbidden, NotFound


def role_of(session: Session, actor: Actor, repository: Repository) -> Role | None:
    """The actor's effective role: site administrators and the operator are admins everywhere;
    a token's scope caps it (a read token reads, a repository's token touches no other)."""
    if actor.system:
        return Role.ADMIN
    if actor.user is None:
        return None
    if actor.user.is_admin:
        role: Role | None = Role.ADMIN
    else:
        role = session.scalar(
            select(RepositoryRole.role).where(
                RepositoryRole.user_id == actor.user.id,
                RepositoryRole.repository_id == repository.id,
            )
        )
    return actor.cap(role, repository.id)


def readable_clause(actor: Actor) -> ColumnElement[bool]:
    """The SQL condition of the repositories the actor may read (the rule of `can_read`, for
    listings): public ones, plus the private ones its roles reach, within its token's scope."""
    public = Repository.is_public.is_(True)
    if actor.system:
        return true()
    if actor.user is None:
        return public
    private: ColumnElement[bool] = (
        true() if actor.user.is_admin else Repository.id.in_(
            select(RepositoryRole.repository_id).where(RepositoryRole.user_id == actor.user.id)))
    if actor.token is not None and actor.token.repository_id is not None:
        private = and_(private, Repository.id == actor.token.repository_id)
    return or_(public, private)


def can_read(session: Session, actor: Actor, repository: Repository) -> bool:
    return repository.is_public or role_of(session, actor, repository) is not None


def has_role(session: Session, actor: Actor, repository: Repository, needed: Role) -> bool:
    role = role_of(session, actor, repository)
    return role is not None and role.rank >= needed.rank


def not_found(name: str) -> NotFound:
    return NotFound(f"repository {name!r} not found", code="repository-not-found")


def not_found_for_upload(name: str) -> NotFound:
    """The upload's 404: the same for a missing and an unreadable private repository, with
    what to do about it (only administrators create repositories)."""
    return NotFound(f"repository {name} not found (or you cannot see it); an administrator "
                    f"creates repositories: pyrkt-registry repo create {name}",
                    code="repository-not-found")


def readable_repository(session: Session, actor: Actor, name: str) -> Repository:
    repository = session.scalar(select(Repository).where(Repository.name == name))
    if repository is None or not can_read(session, actor, repository):
        raise not_found(name)
    return repository


def repository_with_role(session: Session, actor: Actor, name: str, needed: Role) -> Repository:
    """The repository if the actor holds `needed`; 404 if they cannot even read it, else 403."""
    repository = readable_repository(session, actor, name)
    if not has_role(session, actor, repository, needed):
        raise Forbidden(f"you need the {needed.value} role on {name!r} for this", code="no-role")
    return repository
