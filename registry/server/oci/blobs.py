"""Blob bytes: verified writes into storage, per-repository links, chunked upload sessions.

Every write streams into a storage upload (a temporary blob) while SHA-256 is computed, and
is committed under its content address only when the digest the client named matches;
otherwise the temporary is discarded and nothing is stored. Chunked uploads spool to a file
under the data directory (`<data dir>/tmp/oci-uploads/<uuid>`) that every gunicorn worker of
the host shares; the accepted length lives in the `oci_uploads` row, so any worker continues
a session. Several hosts behind a load balancer need sticky sessions for chunked uploads (or
a shared data directory); monolithic uploads work anywhere.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from sqlalchemy import delete, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from registry.server.models import Repository, utcnow
from registry.server.models import aware as _aware
from registry.server.storage import CHUNK_SIZE, BlobStorage, Upload, blob_key
from registry.server.storage.base import owner_is_alive

from .errors import OciError, digest_invalid, upload_unknown
from .models import OciBlobLink, OciUpload

# A chunked upload untouched this long is abandoned (a client pauses seconds between chunks):
# its row and spool file go. A chunk being written holds its spool file's flock, so even a
# PATCH slower than this is never taken for abandoned.
STALE_UPLOAD_AGE = timedelta(hours=1)


def spool_dir(tmp_dir: Path) -> Path:
    """Where chunked /v2/ uploads spool, under the data dir's tmp/ (shared by the workers)."""
    return tmp_dir / "oci-uploads"
_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)$")


def storage_key(digest: str) -> str:
    """Where OCI content lives: `oci/blobs/sha256/ab/abcd...` (apart from the ACIs' `blobs/`,
    whose unreferenced entries the server's gc deletes)."""
    return "oci/" + blob_key(digest)


def too_large(limit: int) -> OciError:
    return OciError(f"blob larger than this registry's limit of {limit} bytes", status=413,
                    code="SIZE_INVALID")


def copy_hashing(source: IO[bytes], sink: BinaryIO | Upload, limit: int, already: int = 0,
                 hasher: hashlib._Hash | None = None) -> int:
    """Copy `source` to EOF into `sink`; returns the bytes copied. Refuses to pass `limit`."""
    copied = 0
    while chunk := source.read(CHUNK_SIZE):
        copied += len(chunk)
        if already + copied > limit:
            raise too_large(limit)
        if hasher is not None:
            hasher.update(chunk)
        sink.write(chunk)
    return copied


def store_verified(storage: BlobStorage, source: IO[bytes], digest: str, limit: int) -> int:
    """Stream `source` into storage under `digest` if (and only if) its SHA-256 matches."""
    hasher = hashlib.sha256()
    with storage.upload() as temp:
        size = copy_hashing(source, temp, limit, hasher=hasher)
        actual = "sha256:" + hasher.hexdigest()
        if actual != digest:
            raise digest_invalid(f"the content's digest is {actual}, not the {digest} given; "
                                 "nothing was stored")
        storage.commit(temp, storage_key(digest))
    return size


def linked(session: Session, repository: Repository, digest: str) -> OciBlobLink | None:
    return session.scalar(select(OciBlobLink).where(OciBlobLink.repository_id == repository.id,
                                                    OciBlobLink.digest == digest))


def link(session: Session, repository: Repository, digest: str, size: int) -> None:
    """Make the blob readable through `repository` (the caller commits)."""
    if linked(session, repository, digest) is None:
        session.add(OciBlobLink(repository_id=repository.id, digest=digest, size=size))
        session.flush()


# -- chunked upload sessions -------------------------------------------------------------------
class Spool:
    """The spool files of upload sessions, in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, upload_id: str) -> Path:
        return self.directory / upload_id

    def create(self, upload_id: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path(upload_id).open("xb").close()

    def remove(self, upload_id: str) -> None:
        self.path(upload_id).unlink(missing_ok=True)


def start_upload(session: Session, spool: Spool, name: str,
                 repository: Repository | None) -> OciUpload:
    """A new session for a push into `name` (`repository` None: it does not exist yet)."""
    remove_stale_uploads(session, spool)
    row = OciUpload(id=str(uuid.uuid4()), repository_name=name,
                    repository_id=repository.id if repository else None, size=0)
    spool.create(row.id)
    session.add(row)
    try:
        session.commit()
    except BaseException:
        spool.remove(row.id)
        raise
    return row


def get_upload(session: Session, name: str, upload_id: str) -> OciUpload:
    row = session.get(OciUpload, upload_id) if _is_uuid(upload_id) else None
    if row is None or row.repository_name != name:
        raise upload_unknown(upload_id)
    return row


def append(session: Session, spool: Spool, row: OciUpload, body: IO[bytes],
           content_range: str | None, limit: int) -> int:
    """Append a chunk; returns the new size. A Content-Range must start where the data ends."""
    start = row.size
    if content_range:
        match = _CONTENT_RANGE.match(content_range.strip())
        if not match or int(match[1]) != start:
            raise OciError(f"chunk starts at {content_range!r} but the upload holds {start} "
                           "bytes: send the next chunk from there", status=416,
                           code="BLOB_UPLOAD_INVALID",
                           headers={"Range": range_header(start)})
    path = spool.path(row.id)
    if not path.exists():
        raise OciError(f"upload {row.id} was started on another registry host; chunked uploads "
                       "need sticky sessions", status=404, code="BLOB_UPLOAD_UNKNOWN")
    with path.open("r+b") as spooled:
        fcntl.flock(spooled.fileno(), fcntl.LOCK_EX)  # "being written": gc keeps it
        # A chunk that failed half-way earlier left bytes past the accepted length: drop them.
        spooled.truncate(start)
        spooled.seek(start)
        try:
            copy_hashing(body, spooled, limit, already=start)
        except BaseException:
            spooled.truncate(start)
            raise
        size = spooled.tell()
    # An UPDATE answers a CursorResult (rowcount); Session.execute is typed as Result.
    moved = cast(CursorResult[Any], session.execute(
        update(OciUpload).where(OciUpload.id == row.id, OciUpload.size == start)
        .values(size=size, updated_at=utcnow())
    )).rowcount
    session.commit()
    if moved != 1:
        raise OciError("another request changed this upload at the same time", status=416,
                       code="BLOB_UPLOAD_INVALID")
    row.size = size
    return size


def finish(session: Session, storage: BlobStorage, spool: Spool, row: OciUpload, digest: str,
           limit: int) -> int:
    """Verify the spooled bytes against `digest` and store them; returns the size. A digest
    mismatch ends the session and leaves nothing behind. The caller links the blob and calls
    `forget` in the transaction that does."""
    try:
        with spool.path(row.id).open("rb") as spooled:
            return store_verified(storage, spooled, digest, limit)
    except BaseException:
        cancel(session, spool, row)
        raise


def forget(session: Session, spool: Spool, row: OciUpload) -> None:
    """Drop a finished session (the caller commits; the spool goes now, it is useless)."""
    session.delete(row)
    spool.remove(row.id)


def cancel(session: Session, spool: Spool, row: OciUpload) -> None:
    session.rollback()
    session.execute(delete(OciUpload).where(OciUpload.id == row.id))
    session.commit()
    spool.remove(row.id)


def remove_stale_uploads(session: Session, spool: Spool, *, dry_run: bool = False,
                         age: timedelta = STALE_UPLOAD_AGE) -> int:
    """Forget abandoned sessions: rows untouched for `age` (clients that went away, a worker
    killed mid-chunk) with their spool files, rows whose spool file is gone, and spool files
    no row names (a crash between creating the file and committing the row). Files a live
    request is writing are kept. Returns how many sessions or files went (or would go);
    commits."""
    cutoff = utcnow() - age
    rows = {row.id: row for row in session.scalars(select(OciUpload)).all()}
    doomed = []
    for upload_id, row in rows.items():
        path = spool.path(upload_id)
        if not path.exists():
            doomed.append(upload_id)  # nothing left to continue from
        elif _aware(row.updated_at) < cutoff and not owner_is_alive(path):
            doomed.append(upload_id)
    orphans = []
    if spool.directory.is_dir():
        for entry in os.scandir(spool.directory):
            if entry.name not in rows and _is_uuid(entry.name) and \
                    entry.stat().st_mtime < time.time() - 60 and not owner_is_alive(entry.path):
                orphans.append(entry.name)
    if not dry_run:
        for upload_id in doomed + orphans:
            spool.remove(upload_id)
        if doomed:
            session.execute(delete(OciUpload).where(OciUpload.id.in_(doomed)))
        session.commit()
    return len(doomed) + len(orphans)


def range_header(size: int) -> str:
    # The spec's (non-RFC) form: the inclusive range received so far; "0-0" when empty.
    return f"0-{max(size - 1, 0)}"


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
