"""Garbage collection: versions the retention policies delete, images no version points at,
blobs no image row names, stale uploads, and (through registry.server.oci.gc) OCI content no
manifest references."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.server.models import Image, Tag
from registry.server.operations import metrics
from registry.server.operations.mirror import blob_key as mirror_blob_key
from registry.server.operations.models import MirroredFile
from registry.server.operations.retention import RetentionReport, apply_retention
from registry.server.storage import BlobStorage, blob_key, sweep_unreferenced

from . import audit
from .actor import Actor

# Function-local imports keep start-up fast: the CLI's commands load only what they use.

# A blob committed moments ago may belong to an upload whose rows are being committed right
# now; only blobs older than this grace period count as orphans.
ORPHAN_GRACE = timedelta(hours=1)
STALE_UPLOAD_AGE = timedelta(hours=24)


@dataclass
class GcReport:
    images_removed: list[str] = field(default_factory=list)
    blobs_removed: list[str] = field(default_factory=list)
    stale_uploads_removed: int = 0
    # Image rows whose blob the storage lost: their versions are removed (pushing the same
    # ACI again restores them); `missing_kept` when that was refused as implausible.
    missing_blobs: list[str] = field(default_factory=list)
    versions_removed: list[str] = field(default_factory=list)
    missing_kept: str | None = None
    oci_blobs_removed: list[str] = field(default_factory=list)
    oci_uploads_removed: int = 0
    retention: RetentionReport | None = None

    def to_dict(self) -> dict[str, object]:
        data = dict(self.__dict__)
        data["retention"] = self.retention.to_dict() if self.retention else None
        return data


def collect_garbage(
    session: Session, storage: BlobStorage, actor: Actor, *, dry_run: bool = False,
    orphan_grace: timedelta = ORPHAN_GRACE, oci_spool_dir: Path | None = None,
) -> GcReport:
    """One pass over the index and the storage; `oci_spool_dir` (the /v2/ chunked-upload
    spool) also collects OCI content, so content deleted through /v2/ does not linger."""
    report = GcReport()
    metrics.GC_RUNS.labels(str(dry_run).lower()).inc()
    # Retention first, so the images its deletions leave unreferenced go in this same run.
    report.retention = apply_retention(session, dry_run=dry_run)
    metrics.RETENTION_RUNS.labels(str(dry_run).lower()).inc()
    if not dry_run:
        metrics.RETENTION_DELETED.inc(len(report.retention.deleted))
    unreferenced = session.scalars(
        select(Image).where(~select(Tag.id).where(Tag.image_pk == Image.id).exists())
    ).all()
    if dry_run:  # what a real run would free once retention had deleted its versions
        report.images_removed.extend(report.retention.images_freed)
    for image in unreferenced:
        report.images_removed.append(image.digest)
        if not dry_run:
            session.delete(image)
    if not dry_run and unreferenced:
        audit.record(session, actor, "gc", "", images=report.images_removed)
        session.commit()
    known = {blob_key(d) for d in session.scalars(select(Image.digest)).all()}
    cutoff = datetime.now(UTC) - orphan_grace
    report.blobs_removed = sweep_unreferenced(storage, "blobs/", known, cutoff, dry_run=dry_run)
    # A pull-through mirror's copies: kept while a mirrored file row names them.
    mirrored = {mirror_blob_key(d) for d in session.scalars(
        select(MirroredFile.digest).where(MirroredFile.digest.is_not(None))) if d}
    report.blobs_removed += sweep_unreferenced(storage, "mirror/", mirrored, cutoff,
                                               dry_run=dry_run)
    _repair_missing_blobs(session, storage, actor, report, dry_run=dry_run)
    report.stale_uploads_removed = storage.cleanup_stale_uploads(STALE_UPLOAD_AGE,
                                                                 dry_run=dry_run)
    if oci_spool_dir is not None:
        from registry.server.oci.gc import collect_oci_garbage

        oci = collect_oci_garbage(session, storage, oci_spool_dir, dry_run=dry_run)
        report.oci_blobs_removed = oci.blobs_removed
        report.oci_uploads_removed = oci.uploads_removed
    return report


def _repair_missing_blobs(session: Session, storage: BlobStorage, actor: Actor,
                          report: GcReport, *, dry_run: bool) -> None:
    """The other direction: rows naming a blob the storage no longer holds (the S3 server
    came back empty, a disk was restored from an old backup). Their versions are removed
    from the index, so nothing advertises what cannot be served; pushing the same ACI again
    restores them. When EVERY image is missing the storage is more likely the wrong one (a
    mistyped bucket) than empty: then nothing is removed and the report says why."""
    present = set(storage.iter_keys("blobs/"))
    images = session.scalars(select(Image)).all()
    missing = [image for image in images if blob_key(image.digest) not in present]
    report.missing_blobs = sorted(image.digest for image in missing)
    if not missing:
        return
    if len(missing) == len(images) and len(images) > 1:
        report.missing_kept = (f"all {len(images)} images are missing from the storage: is it "
                               "the right bucket or directory? nothing was removed")
        return
    for image in missing:
        for tag in session.scalars(select(Tag).where(Tag.image_pk == image.id)).all():
            report.versions_removed.append(f"{image.name}:{tag.version} ({tag.os}/{tag.arch})")
    if dry_run:
        return
    for image in missing:
        for tag in session.scalars(select(Tag).where(Tag.image_pk == image.id)).all():
            repository = tag.repository
            session.delete(tag)
            session.flush()
            if repository.latest_version == tag.version and not session.scalar(
                    select(Tag.id).where(Tag.repository_id == repository.id,
                                         Tag.version == tag.version).limit(1)):
                repository.latest_version = None
        session.delete(image)  # its signature goes with it
    audit.record(session, actor, "gc.missing-blobs", "", images=report.missing_blobs,
                 versions=report.versions_removed)
    session.commit()
