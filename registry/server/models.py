"""The SQL index (SQLAlchemy 2.0 typed models). The schema is created only by migrations/."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Explicit constraint names keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """A stored timestamp as an aware UTC datetime (SQLite hands back naive ones, in UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Role(enum.StrEnum):
    """Per-repository roles; each includes the ones before it."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return ["read", "write", "admin"].index(self.value)


class KeyStatus(enum.StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"


# Timezone-aware timestamps everywhere (SQLite stores them as text, PostgreSQL as timestamptz).
Timestamp = DateTime(timezone=True)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    # "scrypt$n$r$p$salt$hash" (see services.users); never the password itself.
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # A robot account (for CI): no password, it signs in only with its tokens; roles per
    # repository like any user. Its password_hash holds a value no password ever matches.
    is_robot: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )
    roles: Mapped[list[RepositoryRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    # SHA-256 of the token: tokens carry 256 random bits, so a slow hash adds nothing.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the token, shown in listings so users can tell tokens apart.
    hint: Mapped[str] = mapped_column(String(16))
    # What the token may do, at most (never more than its user may): "read", "push" (read and
    # write) or "admin" (everything the user may); see services.tokens.
    scope: Mapped[str] = mapped_column(String(16), default="admin")
    # The one repository the token works on; None: every repository its user may reach.
    repository_id: Mapped[int | None] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # Written on use, at most once a minute per token (services.tokens.LAST_USED_EVERY).
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    last_used_addr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)

    user: Mapped[User] = relationship(back_populates="tokens")
    repository: Mapped[Repository | None] = relationship()


class Repository(Base):
    __tablename__ = "repositories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The full AC name, domain first: "example.com/team/app".
    name: Mapped[str] = mapped_column(String(512), unique=True)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # The version the owner marked as `latest`; None means "the newest pushed".
    latest_version: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    tags: Mapped[list[Tag]] = relationship(
        back_populates="repository", cascade="all, delete-orphan"
    )
    roles: Mapped[list[RepositoryRole]] = relationship(
        back_populates="repository", cascade="all, delete-orphan"
    )
    keys: Mapped[list[SigningKey]] = relationship(back_populates="repository")


class Image(Base):
    """One stored ACI file. Identical files are stored (and indexed) once."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "sha256:<hex>" of the file exactly as served: the ETag and the storage key.
    digest: Mapped[str] = mapped_column(String(80), unique=True)
    # appc image ID: "sha512-<hex>" of the uncompressed tar.
    image_id: Mapped[str] = mapped_column(String(140), index=True)
    name: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(BigInteger)
    uncompressed_size: Mapped[int] = mapped_column(BigInteger)
    compression: Mapped[str] = mapped_column(String(16))
    manifest: Mapped[str] = mapped_column(Text)
    labels: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    signature: Mapped[Signature | None] = relationship(
        back_populates="image", cascade="all, delete-orphan", uselist=False
    )
    tags: Mapped[list[Tag]] = relationship(back_populates="image")


class Tag(Base):
    """version/os/arch of a repository -> the image served for it."""

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("repository_id", "version", "os", "arch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), index=True
    )
    image_pk: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    version: Mapped[str] = mapped_column(String(255))
    os: Mapped[str] = mapped_column(String(32))
    arch: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    repository: Mapped[Repository] = relationship(back_populates="tags")
    image: Mapped[Image] = relationship(back_populates="tags")


class SigningKey(Base):
    """An OpenPGP key: the registry's own (with secret) or one registered for a repository."""

    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    user_ids: Mapped[str] = mapped_column(Text, default="")
    armored_public: Mapped[str] = mapped_column(Text)
    # Only the registry's own keys have a secret; kept in the database so every registry host
    # behind a load balancer signs with the same key.
    armored_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    # None for the registry's own keys; set for a key a repository's owner registered.
    repository_id: Mapped[int | None] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), nullable=True, index=True
    )
    status: Mapped[KeyStatus] = mapped_column(
        Enum(KeyStatus, name="key_status", values_callable=lambda e: [m.value for m in e]),
        default=KeyStatus.ACTIVE,
    )
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)

    repository: Mapped[Repository | None] = relationship(back_populates="keys")


class Signature(Base):
    """The detached signature served as `.aci.asc` for an image, and the key that made it."""

    __tablename__ = "signatures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_pk: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), unique=True
    )
    key_fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    armored: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    image: Mapped[Image] = relationship(back_populates="signature")


class RepositoryRole(Base):
    __tablename__ = "repository_roles"
    __table_args__ = (UniqueConstraint("user_id", "repository_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[Role] = mapped_column(
        Enum(Role, name="repository_role", values_callable=lambda e: [m.value for m in e])
    )

    user: Mapped[User] = relationship(back_populates="roles")
    repository: Mapped[Repository] = relationship(back_populates="roles")


class AuditEvent(Base):
    """One change, who made it and from where. Rows are only ever added."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)
    # Names, not foreign keys: the log outlives the users and repositories it mentions.
    actor: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # "user", "robot", "operator" (pyrkt-registry on the host), "system" (the registry on its
    # own, e.g. converting an OCI tag) or "anonymous".
    actor_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # For system actions: what set them off ("first fetch of NAME:1.0 by alice").
    triggered_by: Mapped[str | None] = mapped_column(String(512), nullable=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(512), default="")
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    remote_addr: Mapped[str | None] = mapped_column(String(64), nullable=True)


class PullCount(Base):
    """Downloads of one version of a repository on one day (UTC), counted in memory and added
    in batches (services.pulls), so counting costs a download nothing."""

    __tablename__ = "pull_counts"
    __table_args__ = (UniqueConstraint("repository_id", "version", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE")
    )
    version: Mapped[str] = mapped_column(String(255))
    day: Mapped[date] = mapped_column(Date)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class LoginThrottle(Base):
    """Failed sign-in attempts of one account or one client address (services.throttle).

    In the database, not in process memory: every gunicorn worker (and every registry host
    sharing the database) sees the same counts, so spreading guesses over workers gains
    nothing."""

    __tablename__ = "login_throttle"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "account" (a user name, existing or not) or "address" (the client's IP address).
    scope: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(255))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    blocked_until: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
