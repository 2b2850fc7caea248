"""Robot accounts for CI: no password, tokens only, roles per repository.

A robot is a user row with `is_robot` set and a password hash no password matches, so every
rule that applies to users (roles, token scopes, privacy) applies to it unchanged; it cannot
sign in to the web UI, hold a password or be an administrator. Site administrators create and
delete robots and mint their tokens; a repository's admins may give a robot a role on it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.server.models import Repository, RepositoryRole, Role, User

from . import audit
from .actor import Actor
from .errors import BadRequest, Conflict, Forbidden, NotFound
from .users import USERNAME_RE

# Not a valid "scrypt$..." hash, so users.check_password can never accept anything.
NO_PASSWORD = "!robot: tokens only"


def _require_site_admin(actor: Actor, what: str) -> None:
    if not actor.is_site_admin:
        raise Forbidden(f"only an administrator may {what}")


def get_robot(session: Session, name: str) -> User:
    robot = session.scalar(select(User).where(User.username == name, User.is_robot.is_(True)))
    if robot is None:
        raise NotFound(f"no robot account named {name!r}", code="robot-not-found")
    return robot


def create_robot(session: Session, actor: Actor, name: str, description: str = "") -> User:
    _require_site_admin(actor, "create robot accounts")
    if not USERNAME_RE.match(name):
        raise BadRequest(f"bad robot name {name!r}: use 1-64 lower-case letters, digits, '.', "
                         "'_' or '-', starting with a letter or digit", code="bad-username")
    if session.scalar(select(User.id).where(User.username == name)) is not None:
        raise Conflict(f"a user or robot named {name!r} already exists", code="user-exists")
    robot = User(username=name, password_hash=NO_PASSWORD, is_admin=False, is_robot=True,
                 description=description.strip()[:255])
    session.add(robot)
    audit.record(session, actor, "robot.create", name, description=description or None)
    session.commit()
    return robot


def list_robots(session: Session, actor: Actor) -> Sequence[User]:
    _require_site_admin(actor, "list robot accounts")
    return session.scalars(select(User).where(User.is_robot.is_(True))
                           .order_by(User.username)).all()


def delete_robot(session: Session, actor: Actor, name: str) -> None:
    """Remove the robot; its tokens and roles go with it."""
    _require_site_admin(actor, "delete robot accounts")
    session.delete(get_robot(session, name))
    audit.record(session, actor, "robot.delete", name)
    session.commit()


def robot_roles(session: Session, actor: Actor, name: str) -> list[tuple[str, Role]]:
    """(repository, role) of every role the robot holds, by repository name."""
    _require_site_admin(actor, "see robot accounts")
    robot = get_robot(session, name)
    rows = session.execute(
        select(Repository.name, RepositoryRole.role)
        .join(RepositoryRole, RepositoryRole.repository_id == Repository.id)
        .where(RepositoryRole.user_id == robot.id).order_by(Repository.name)).all()
    return [(repository, role) for repository, role in rows]
