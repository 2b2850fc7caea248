"""The OCI distribution index: manifests, tags, which blobs each repository holds, uploads.

The rows hang off the server's `repositories` table, so the registry's roles, privacy and
deletion apply to OCI content unchanged. Blob and manifest bytes live in the blob storage
under `oci/blobs/...` (see `oci.blobs.storage_key`), outside the `blobs/` prefix whose
orphans the server's gc removes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.server.models import Base, Repository, Timestamp, utcnow


class OciBlobLink(Base):
    """A blob (layer, config or manifest bytes) that a repository may serve.

    Content is stored once per digest; the link is what makes it readable through one
    repository, so a blob pushed to a private repository never leaks through another.
    """

    __tablename__ = "oci_blob_links"
    __table_args__ = (UniqueConstraint("repository_id", "digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), index=True
    )
    digest: Mapped[str] = mapped_column(String(140), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class OciManifest(Base):
    """A manifest (image manifest or index) pushed to a repository."""

    __tablename__ = "oci_manifests"
    __table_args__ = (UniqueConstraint("repository_id", "digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), index=True
    )
    digest: Mapped[str] = mapped_column(String(140))
    media_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    repository: Mapped[Repository] = relationship()
    tags: Mapped[list[OciTag]] = relationship(
        back_populates="manifest", cascade="all, delete-orphan"
    )


class OciTag(Base):
    __tablename__ = "oci_tags"
    __table_args__ = (UniqueConstraint("repository_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    manifest_id: Mapped[int] = mapped_column(
        ForeignKey("oci_manifests.id", ondelete="CASCADE"), index=True
    )
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    manifest: Mapped[OciManifest] = relationship(back_populates="tags")


class OciUpload(Base):
    """A chunked blob upload in progress.

    The bytes received so far are spooled to a file under the data directory (shared by all
    gunicorn workers of a host); the row records how many were accepted, so any worker can
    take the next PATCH or the final PUT.
    """

    __tablename__ = "oci_uploads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # The appc name the upload goes to: a push into a new repository creates it only when the
    # first blob or manifest is stored, so an abandoned or refused upload leaves no repository.
    repository_name: Mapped[str] = mapped_column(String(512))
    # Set when the repository existed at the start (its deletion then ends the upload too).
    repository_id: Mapped[int | None] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), nullable=True, index=True
    )
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)


class OciConversion(Base):
    """The appc offer of an OCI tag: one row per (repository, version, os, arch).

    `state` is `converting` while a worker builds the ACI (others answer 202 for the
    signature meanwhile), `done` once the image is indexed as a native version, or `failed`
    with the reason in `error`. `manifest_digest` pins which push the ACI was made from.
    """

    __tablename__ = "oci_conversions"
    __table_args__ = (UniqueConstraint("repository_id", "version", "os", "arch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[str] = mapped_column(String(128))
    os: Mapped[str] = mapped_column(String(32))
    arch: Mapped[str] = mapped_column(String(32))
    manifest_digest: Mapped[str] = mapped_column(String(140))
    state: Mapped[str] = mapped_column(String(16))
    error: Mapped[str] = mapped_column(Text, default="")
    image_digest: Mapped[str | None] = mapped_column(String(80), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
