"""Repositories, their versions (tags) and roles: create, list, change, delete, resolve `latest`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from registry.server.models import Image, Repository, RepositoryRole, Role, Tag, User

from . import audit
from .access import can_read, readable_clause, readable_repository, repository_with_role
from .actor import Actor
from .errors import BadRequest, Conflict, Forbidden, NotFound
from .names import check_hosted_name, check_version
from .users import get_user

LATEST = "latest"


def create_repository(
    session: Session,
    actor: Actor,
    name: str,
    domains: tuple[str, ...],
    *,
    public: bool = True,
    description: str = "",
    commit: bool = True,
) -> Repository:
    """A new, empty repository. Only site administrators create repositories."""
    if not actor.is_site_admin:
        raise Forbidden("only an administrator may create repositories", code="no-role")
    check_hosted_name(name, domains)
    existing = session.scalar(select(Repository).where(Repository.name == name))
    if existing is not None:
        raise Conflict(f"repository {name!r} already exists", code="repository-exists")
    repository = Repository(name=name, is_public=public, description=description)
    session.add(repository)
    audit.record(session, actor, "repository.create", name, public=public)
    if commit:
        session.commit()
    return repository


def ensure_repository(
    session: Session, actor: Actor, name: str, domains: tuple[str, ...], *, public: bool = True,
) -> Repository:
    """The repository `name`, created in the caller's transaction if it does not exist yet
    (the first push into a new name). Idempotent under concurrency: when two first pushes race,
    both get the one row. On SQLite and PostgreSQL `INSERT ... ON CONFLICT DO NOTHING` waits for
    a concurrent insert of the same name to commit, then inserts nothing, so the caller's
    transaction keeps whatever else it holds; other databases use a savepoint."""
    if not actor.is_site_admin:
        raise Forbidden("only an administrator may create repositories", code="no-role")
    check_hosted_name(name, domains)
    existing = session.scalar(select(Repository).where(Repository.name == name))
    if existing is not None:
        return existing
    values = {"name": name, "is_public": public, "description": ""}
    table = cast(Table, Repository.__table__)  # declared models map a Table
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        insert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)
        result = session.connection().execute(
            insert.values(**values).on_conflict_do_nothing(index_elements=["name"]))
        created = result.rowcount == 1
    else:  # pragma: no cover - the registry runs on SQLite and PostgreSQL
        try:
            with session.begin_nested():
                session.add(Repository(**values))
            created = True
        except IntegrityError:
            created = False
    repository = session.scalars(select(Repository).where(Repository.name == name)).one()
    if created:
        audit.record(session, actor, "repository.create", name, public=public)
    return repository


def list_repositories(
    session: Session, actor: Actor, *, search: str = "", prefix: str = ""
) -> list[Repository]:
    """Repositories the actor may read, by name; `search` matches anywhere in the name."""
    query = select(Repository).order_by(Repository.name)
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Repository.name.like(f"%{escaped}%", escape="\\"))
    if prefix:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(or_(Repository.name == prefix,
                                Repository.name.like(f"{escaped}/%", escape="\\")))
    query = query.where(readable_clause(actor))
    return list(session.scalars(query).all())


def get_repository(session: Session, actor: Actor, name: str) -> Repository:
    return readable_repository(session, actor, name)


def list_tags(session: Session, actor: Actor, name: str) -> Sequence[Tag]:
    """The repository's versions, newest first, with their images and signatures loaded."""
    repository = readable_repository(session, actor, name)
    return session.scalars(
        select(Tag)
        .where(Tag.repository_id == repository.id)
        .options(selectinload(Tag.image).selectinload(Image.signature))
        .order_by(Tag.created_at.desc(), Tag.id.desc())
    ).all()


def update_repository(
    session: Session,
    actor: Actor,
    name: str,
    *,
    public: bool | None = None,
    description: str | None = None,
) -> Repository:
    repository = repository_with_role(session, actor, name, Role.ADMIN)
    changes: dict[str, object] = {}
    if public is not None and public != repository.is_public:
        repository.is_public = public
        changes["public"] = public
    if description is not None and description != repository.description:
        repository.description = description
        changes["description"] = description
    if changes:
        audit.record(session, actor, "repository.update", name, **changes)
        session.commit()
    return repository


def delete_repository(session: Session, actor: Actor, name: str) -> None:
    """Remove the repository and its versions; `gc` later removes images nothing refers to."""
    repository = repository_with_role(session, actor, name, Role.ADMIN)
    session.delete(repository)
    audit.record(session, actor, "repository.delete", name)
    session.commit()


def latest_version(session: Session, repository: Repository) -> str | None:
    """The version `latest` stands for (the JSON API and the web UI both report this): the
    owner's mark while it has an image, else the newest push; None for an empty repository.
    Per os/arch, `resolve_tag` applies the same rule to downloads."""
    if repository.latest_version is not None and _tag_count(
            session, repository, repository.latest_version):
        return repository.latest_version
    return session.scalar(select(Tag.version).where(Tag.repository_id == repository.id)
                          .order_by(Tag.created_at.desc(), Tag.id.desc()).limit(1))


def resolve_tag(
    session: Session, repository: Repository, version: str, os: str, arch: str
) -> Tag | None:
    """The tag served for version/os/arch; `latest` is the owner's mark or the newest push."""
    if version == LATEST:
        if repository.latest_version is not None:
            marked = _tag(session, repository, repository.latest_version, os, arch)
            if marked is not None:
                return marked
        return session.scalar(
            select(Tag)
            .where(Tag.repository_id == repository.id, Tag.os == os, Tag.arch == arch)
            .order_by(Tag.created_at.desc(), Tag.id.desc())
            .limit(1)
        )
    return _tag(session, repository, version, os, arch)


def delete_version(
    session: Session, actor: Actor, name: str, version: str,
    *, os: str | None = None, arch: str | None = None,
) -> int:
    """Remove a version (every os/arch, or one); returns how many tags went."""
    repository = repository_with_role(session, actor, name, Role.WRITE)
    query = select(Tag).where(Tag.repository_id == repository.id, Tag.version == version)
    if os is not None:
        query = query.where(Tag.os == os)
    if arch is not None:
        query = query.where(Tag.arch == arch)
    tags = session.scalars(query).all()
    if not tags:
        raise NotFound(f"{name}:{version} has no such version", code="version-not-found")
    for tag in tags:
        session.delete(tag)
    session.flush()
    if repository.latest_version == version and _tag_count(session, repository, version) == 0:
        repository.latest_version = None
    audit.record(session, actor, "version.delete", f"{name}:{version}", os=os, arch=arch,
                 images=sorted({t.image.image_id for t in tags}))
    session.commit()
    return len(tags)


def set_latest(session: Session, actor: Actor, name: str, version: str | None) -> Repository:
    """Mark `version` as what `latest` serves; None returns to "the newest push"."""
    repository = repository_with_role(session, actor, name, Role.WRITE)
    if version is not None:
        check_version(version)
        if _tag_count(session, repository, version) == 0:
            raise NotFound(f"{name} has no version {version!r}", code="version-not-found")
    repository.latest_version = version
    audit.record(session, actor, "repository.latest", name, version=version)
    session.commit()
    return repository


def grant_role(session: Session, actor: Actor, name: str, username: str, role: Role | None) -> None:
    """Give `username` a role on the repository, or take it away with `role=None`."""
    repository = repository_with_role(session, actor, name, Role.ADMIN)
    user: User = get_user(session, username)
    session.execute(delete(RepositoryRole).where(RepositoryRole.user_id == user.id,
                                                 RepositoryRole.repository_id == repository.id))
    if role is not None:
        session.add(RepositoryRole(user_id=user.id, repository_id=repository.id, role=Role(role)))
    audit.record(session, actor, "role.set", name, user=username,
                 role=role.value if role else None)
    session.commit()


def list_roles(session: Session, actor: Actor, name: str) -> list[tuple[str, Role]]:
    repository = repository_with_role(session, actor, name, Role.ADMIN)
    rows = session.execute(
        select(User.username, RepositoryRole.role)
        .join(RepositoryRole, RepositoryRole.user_id == User.id)
        .where(RepositoryRole.repository_id == repository.id)
        .order_by(User.username)
    ).all()
    return [(username, role) for username, role in rows]


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise BadRequest(f"unknown role {value!r}: use read, write or admin",
                         code="bad-role") from None


def visible_or_none(session: Session, actor: Actor, name: str) -> Repository | None:
    """The repository if the actor may read it, else None (for pages that list, not fail)."""
    repository = session.scalar(select(Repository).where(Repository.name == name))
    if repository is None or not can_read(session, actor, repository):
        return None
    return repository


def _tag(session: Session, repository: Repository, version: str, os: str, arch: str) -> Tag | None:
    return session.scalar(select(Tag).where(
        Tag.repository_id == repository.id, Tag.version == version, Tag.os == os, Tag.arch == arch
    ))


def _tag_count(session: Session, repository: Repository, version: str) -> int:
    return len(session.scalars(select(Tag.id).where(
        Tag.repository_id == repository.id, Tag.version == version)).all())
