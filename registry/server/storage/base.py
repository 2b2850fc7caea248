"""The `BlobStorage` interface, its `Upload` (a spooled temporary blob) and `BlobInfo`."""

from __future__ import annotations

import abc
import fcntl
import io
import os
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal

from .errors import InvalidRange, StorageError, UploadClosed

# Read size used by the streaming helpers: large enough for throughput, small enough that
# a worker's memory stays flat however big the blob is.
CHUNK_SIZE = 1024 * 1024

UploadState = Literal["open", "committed", "aborted"]


@dataclass(frozen=True)
class BlobInfo:
    """What a backend knows about a committed blob.

    `etag` is backend-specific and opaque (S3's ETag, or size+mtime on disk): it changes when
    the object changes, but it is not a content digest. Serve the blob's digest as the HTTP
    ETag instead; keys are content-addressed, so the caller knows it.
    """

    key: str
    size: int
    mtime: datetime  # timezone-aware, UTC
    etag: str


class Upload:
    """A blob being written: a writable binary file-like object backed by a temporary file.

    Nothing becomes visible under a key until `BlobStorage.commit(upload, key)`. Use it as a
    context manager: leaving the block without a commit (normally or by an exception) aborts
    and removes the temporary file. Callers hash while writing, then may read back what they
    wrote with `open_for_read()` (e.g. to validate the ACI) before committing.

    Both backends spool into a local temporary file (LocalStorage: under its root, so the
    commit is a rename on the same filesystem; S3Storage: in its spool directory, so the
    read-back costs no network and the bucket sees nothing before the commit).
    """

    def __init__(self, owner: BlobStorage, path: Path) -> None:
        self._owner = owner
        self._path = path
        # "xb": the name was chosen fresh by the backend; never clobber another upload's file.
        self._file: BinaryIO | None = open(path, "xb")
        # Held as long as this process lives: a spool file whose lock can be taken belongs to
        # a process that died (kill -9, a crash) and is reclaimed (`reclaim_spool_files`).
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._size = 0
        self._state: UploadState = "open"
        # An upload dropped without commit or abort (a caller that skipped the `with`) still
        # removes its temporary when collected or at interpreter exit.
        self._finalizer = weakref.finalize(self, _discard_temporary, self._file, path)

    # -- the file-like side ------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> int:
        file = self._require_file()
        written = file.write(data)
        self._size += written
        return written

    def writable(self) -> bool:
        return self._state == "open"

    def tell(self) -> int:
        """The write position, i.e. bytes written so far (writers such as gzip ask for it)."""
        return self._size

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        self._require_file().flush()

    @property
    def closed(self) -> bool:
        return self._state != "open"

    # -- upload state ------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    @property
    def state(self) -> UploadState:
        return self._state

    @property
    def temp_path(self) -> Path:
        """The local temporary file holding the bytes written so far (valid while open)."""
        self._require_file()
        return self._path

    @property
    def storage(self) -> BlobStorage:
        return self._owner

    def open_for_read(self) -> BinaryIO:
        """A new binary reader over everything written so far, from the first byte.

        May be called more than once; the caller closes each reader. Writing may continue
        afterwards, but a reader opened before sees an unspecified tail.
        """
        self.flush()
        return open(self._path, "rb")

    def commit(self, key: str) -> BlobInfo:
        """Shorthand for `self.storage.commit(self, key)`."""
        return self._owner.commit(self, key)

    def abort(self) -> None:
        """Discard the upload and remove its temporary file; harmless to call twice."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._file = None
        self._finalizer()  # closes and removes the temporary file

    def __enter__(self) -> Upload:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        self.abort()
        return False

    def __repr__(self) -> str:
        return f"<Upload {self._path.name} {self._state} {self._size} bytes>"

    # -- for the backends --------------------------------------------------------------------
    def _require_file(self) -> BinaryIO:
        if self._file is None or self._state != "open":
            raise UploadClosed(f"upload {self._path.name} is already {self._state}")
        return self._file

    def _finish_writing(self, *, durable: bool) -> Path:
        """Flush (and fsync if `durable`) the temp file and return its path.

        The file stays open: if the commit fails the upload is still usable (retry or abort).
        """
        file = self._require_file()
        file.flush()
        if durable:
            os.fsync(file.fileno())
        return self._path

    def _mark_committed(self) -> None:
        """The backend moved or copied the temporary; it is no longer ours to remove."""
        self._state = "committed"
        self._finalizer.detach()
        self._close_file()

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _discard_temporary(file: BinaryIO, path: Path) -> None:
    file.close()
    path.unlink(missing_ok=True)


class BlobStorage(abc.ABC):
    """Content-addressed blob storage: the Docker-distribution-style driver split, made small.

    Keys are chosen by the caller (see `blob_key`) and are immutable once committed: a commit
    to a key that already holds the same content is a no-op, so concurrent identical uploads
    are fine. Reads stream; nothing here holds a whole blob in memory.
    """

    @abc.abstractmethod
    def upload(self) -> Upload:
        """Start a new upload (a temporary blob); use it as a context manager."""

    @abc.abstractmethod
    def commit(self, upload: Upload, key: str) -> BlobInfo:
        """Publish `upload` under `key` atomically and return its `BlobInfo`.

        Readers see either no object or the whole one. If `key` already holds a blob of the
        same size, that blob stays and the upload is discarded; a different size raises
        `KeyConflict`. On failure the upload stays open so the caller may retry or abort.
        """

    def abort(self, upload: Upload) -> None:
        """Discard `upload` (same as `upload.abort()`)."""
        upload.abort()

    @abc.abstractmethod
    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """A binary reader over bytes `[start, end)` of the blob (end exclusive, like a slice).

        `end=None` or an end beyond the size reads to the end. `start` beyond the size raises
        `InvalidRange`; a missing key raises `BlobNotFound`. The caller closes the reader.
        An HTTP range `bytes=a-b` is `open(key, a, b + 1)`.
        """

    @abc.abstractmethod
    def stat(self, key: str) -> BlobInfo:
        """Size, modification time and etag of a blob; `BlobNotFound` if absent."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a committed blob lives under `key`."""

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove the blob; True if it existed. Readers already streaming it may finish."""

    @abc.abstractmethod
    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Every committed key starting with `prefix`, in lexicographic order (for gc)."""

    @abc.abstractmethod
    def cleanup_stale_uploads(self, older_than: timedelta, *, dry_run: bool = False) -> int:
        """Remove temporaries of uploads whose process died (at once) or, where the owner
        cannot be known (S3 multipart uploads), untouched for `older_than`; return how many
        (with `dry_run`: how many would go)."""

    @abc.abstractmethod
    def reclaim_dead_uploads(self, *, dry_run: bool = False) -> int:
        """Remove the spool files of uploads no live process owns (a crash, kill -9); the
        registry calls it when a worker starts. Returns how many."""

    def local_path(self, key: str) -> Path | None:
        """The file holding the blob, for sendfile; None when the backend is not local."""
        return None

    def presigned_url(
        self, key: str, expires: int | timedelta = 3600, *, content_type: str | None = None
    ) -> str | None:
        """A time-limited URL a client can GET the blob from directly; None if unsupported."""
        return None

    @abc.abstractmethod
    def check(self) -> None:
        """Raise a `StorageError` explaining why the backend is unusable; return if fine."""


# A spool file this young may be one whose upload has not taken its lock yet (the lock follows
# the file's creation within microseconds): never reclaimed.
SPOOL_MIN_AGE = 2.0


def owner_is_alive(path: str | os.PathLike[str]) -> bool:
    """Whether the process writing this spool file still lives (it holds the file's flock)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True  # finished meanwhile: nothing to reclaim
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the lock if we took it
    return False


def reclaim_spool_files(paths: Iterator[os.DirEntry[str]], *, dry_run: bool = False) -> int:
    """Remove (or, with `dry_run`, count) spool files no live process owns; returns how many."""
    cutoff = time.time() - SPOOL_MIN_AGE
    reclaimed = 0
    for entry in paths:
        try:
            if entry.stat().st_mtime > cutoff or owner_is_alive(entry.path):
                continue
            if not dry_run:
                os.unlink(entry.path)
            reclaimed += 1
        except FileNotFoundError:
            continue  # committed or aborted meanwhile
    return reclaimed


def check_range(start: int, end: int | None) -> None:
    """Reject ranges that are wrong whatever the blob's size."""
    if not isinstance(start, int) or start < 0:
        raise InvalidRange(f"range start must be a non-negative integer, got {start!r}")
    if end is not None and (not isinstance(end, int) or end < start):
        raise InvalidRange(f"range end {end!r} is before start {start}")


def clamp_range(key: str, size: int, start: int, end: int | None) -> tuple[int, int]:
    """The concrete `[start, end)` within a blob of `size` bytes."""
    check_range(start, end)
    if start > size:
        raise InvalidRange(f"range start {start} is beyond the {size} bytes of {key!r}")
    stop = size if end is None else min(end, size)
    return start, stop


class LimitedReader(io.RawIOBase):
    """A raw reader of exactly `limit` bytes of `source`; closes `source` when closed.

    A source that ends early raises `StorageError` rather than passing for a short blob, and
    `translate` (if given) turns the source's own exceptions into `StorageError`s.
    """

    def __init__(
        self,
        source: BinaryIO | io.RawIOBase,
        limit: int,
        *,
        name: str = "blob",
        translate: Callable[[Exception], Exception | None] | None = None,
    ) -> None:
        super().__init__()
        self._source = source
        self._remaining = limit
        self._name = name
        self._translate = translate

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._remaining <= 0:
            return 0
        view = memoryview(buffer).cast("B")[: self._remaining]
        try:
            count = self._source.readinto(view) or 0  # type: ignore[union-attr]
        except Exception as exc:
            translated = self._translate(exc) if self._translate else None
            if translated is None:
                raise
            raise translated from exc
        if count == 0:
            raise StorageError(f"{self._name} ended {self._remaining} bytes early")
        self._remaining -= count
        return count

    def close(self) -> None:
        if not self.closed:
            try:
                self._source.close()
            finally:
                super().close()


def buffered(raw: io.RawIOBase) -> BinaryIO:
    """Wrap a raw reader so callers get the usual `read(n)`/`read()` semantics."""
    return io.BufferedReader(raw, buffer_size=CHUNK_SIZE)  # type: ignore[return-value]


def iter_chunks(reader: BinaryIO, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """A reader's bytes in chunks, closing it at the end (e.g. for a WSGI body).

    The first chunk is read now, by the caller: a storage that fails between opening the blob
    and its first byte (S3 answering GetObject, then stalling) raises inside the request, where
    its handler answers 503, instead of inside the WSGI body, where the server can only send 500."""
    try:
        first = reader.read(chunk_size)
    except BaseException:
        reader.close()
        raise
    return _chunks(first, reader, chunk_size)


def _chunks(first: bytes, reader: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    try:
        chunk = first
        while chunk:
            yield chunk
            chunk = reader.read(chunk_size)
    finally:
        reader.close()
