"""The tables of running the registry: retention policies, protected versions, webhooks and
their deliveries, pull-through mirrors and what they cached."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.server.models import Base, Repository, Timestamp, utcnow


class RetentionPolicy(Base):
    """How many versions a repository keeps; the row without a repository is registry-wide.

    A repository's own policy replaces the registry-wide one. With both rules set a version
    goes only when it breaks both: it is not among the `keep_last` newest AND it is older
    than `max_age_days` (so neither rule alone can empty a repository that the other keeps).
    """

    __tablename__ = "retention_policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int | None] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), nullable=True, unique=True
    )
    keep_last: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_age_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    repository: Mapped[Repository | None] = relationship()


class ProtectedVersion(Base):
    """A version retention never deletes (every os/arch of it)."""

    __tablename__ = "protected_versions"
    __table_args__ = (UniqueConstraint("repository_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Webhook(Base):
    """A receiver of event notifications; `repository_id` None means every repository."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    # The HMAC-SHA256 key of the signature header; shown once, when the hook is made.
    secret: Mapped[str] = mapped_column(String(128))
    events: Mapped[list[str]] = mapped_column(JSON)
    repository_id: Mapped[int | None] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), nullable=True, index=True
    )
    description: Mapped[str] = mapped_column(String(255), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    repository: Mapped[Repository | None] = relationship()
    deliveries: Mapped[list[WebhookDelivery]] = relationship(
        back_populates="webhook", cascade="all, delete-orphan", passive_deletes=True
    )


class WebhookDelivery(Base):
    """One event for one hook: written in the transaction of the change it reports (an
    outbox), then sent by the dispatcher, so a slow receiver never slows the change."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    # pending -> delivered | failed (after the last retry)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)
    # A dispatcher owns the row until then; another may take it after (a crashed dispatcher).
    claimed_until: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    # Every attempt: {"at", "status" (HTTP code or null), "error", "seconds"}, oldest first.
    attempt_log: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)

    webhook: Mapped[Webhook] = relationship(back_populates="deliveries")


class Mirror(Base):
    """A name prefix this registry answers for on behalf of its upstream (pull-through)."""

    __tablename__ = "mirrors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(512), unique=True)
    # How upstream is reached: plain HTTP allowed, another port than 443/80, a CA bundle.
    allow_http: Mapped[bool] = mapped_column(Boolean, default=False)
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ca_bundle: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class MirroredFile(Base):
    """An upstream file the mirror keeps: an ACI (in blob storage), its signature or keys."""

    __tablename__ = "mirrored_files"
    __table_args__ = (UniqueConstraint("mirror_id", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mirror_id: Mapped[int] = mapped_column(ForeignKey("mirrors.id", ondelete="CASCADE"), index=True)
    # Our own path for it: "aci/NAME/VERSION/OS/ARCH/EXT" or "keys/PREFIX".
    path: Mapped[str] = mapped_column(String(1024))
    upstream_url: Mapped[str] = mapped_column(String(2048))
    # ACIs: "sha256:<hex>" of the stored blob; small files keep their text inline.
    digest: Mapped[str | None] = mapped_column(String(80), nullable=True)
    content: Mapped[str | None] = mapped_column(Text, nullable=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    etag: Mapped[str | None] = mapped_column(String(255), nullable=True)
    fetched_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # Fresh until then (upstream's Cache-Control max-age); after it, revalidated on request.
    fresh_until: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    mirror: Mapped[Mirror] = relationship()
