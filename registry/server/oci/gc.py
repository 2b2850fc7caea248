"""Garbage collection of OCI content: mark what manifests still reference, sweep the rest.

Run it next to the server's own gc (`pyrkt-registry gc`): the server's gc only looks under
`blobs/`, this one under `oci/blobs/`. Steps: (1) in every repository, blob links that no
remaining manifest references (as itself, its config, a layer, or an index entry) are
dropped once older than the grace period, so a push in progress keeps its fresh blobs;
(2) stored bytes no link names any more are deleted, also after the grace period;
(3) upload sessions untouched for a day go with their spool files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.docker import DockerError
from registry.server.models import aware, utcnow
from registry.server.storage import BlobStorage, StorageError, sweep_unreferenced

from .blobs import STALE_UPLOAD_AGE, Spool, remove_stale_uploads, storage_key
from .errors import OciError
from .manifests import references
from .models import OciBlobLink, OciManifest
from .source import read_document

GRACE = timedelta(hours=1)
PREFIX = "oci/blobs/"


@dataclass
class OciGcReport:
    links_removed: int = 0
    blobs_removed: list[str] = field(default_factory=list)
    uploads_removed: int = 0


def collect_oci_garbage(session: Session, storage: BlobStorage, spool_dir: Path, *,
                        dry_run: bool = False, grace: timedelta = GRACE) -> OciGcReport:
    report = OciGcReport()
    cutoff = utcnow() - grace
    referenced, protected = _referenced(session, storage)
    for link in session.scalars(select(OciBlobLink)).all():
        if ((link.repository_id, link.digest) in referenced or link.repository_id in protected
                or aware(link.created_at) > cutoff):
            continue
        report.links_removed += 1
        if not dry_run:
            session.delete(link)
    if not dry_run:
        session.commit()
    linked = {storage_key(d) for d in session.scalars(select(OciBlobLink.digest)).all()}
    report.blobs_removed = sweep_unreferenced(storage, PREFIX, linked, cutoff, dry_run=dry_run)
    report.uploads_removed = remove_stale_uploads(session, Spool(spool_dir), dry_run=dry_run)
    return report


def _referenced(session: Session, storage: BlobStorage
                ) -> tuple[set[tuple[int, str]], set[int]]:
    """(repository id, digest) of every blob a remaining manifest needs, and the repositories
    with an unreadable manifest, whose links are all kept rather than guessed at."""
    marked: set[tuple[int, str]] = set()
    protected: set[int] = set()
    for manifest in session.scalars(select(OciManifest)).all():
        marked.add((manifest.repository_id, manifest.digest))
        try:
            document = read_document(storage, manifest.digest, f"manifest {manifest.digest}")
            children = references(document, manifest.media_type)
        except (DockerError, OciError, StorageError):
            protected.add(manifest.repository_id)
            continue
        marked.update((manifest.repository_id, child) for child in children)
    return marked, protected



__all__ = ["GRACE", "STALE_UPLOAD_AGE", "OciGcReport", "collect_oci_garbage"]
