"""`LocalStorage`: blobs as files under one root directory; commits are same-filesystem renames."""

from __future__ import annotations

import errno
import os
import stat as stat_module
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from .base import (
    BlobInfo,
    BlobStorage,
    LimitedReader,
    Upload,
    buffered,
    clamp_range,
    reclaim_spool_files,
)
from .errors import BlobNotFound, KeyConflict, StorageConfigError, StorageError
from .keys import validate_key, validate_prefix

# Temporaries live under the root (same filesystem, so the commit is an atomic rename) in a
# directory whose leading dot no key can have.
UPLOADS_DIR = ".uploads"
UPLOAD_SUFFIX = ".part"


class LocalStorage(BlobStorage):
    """Blobs as plain files: `ROOT/<key>`, uploads in `ROOT/.uploads/`.

    A commit fsyncs the temporary file, renames it into place and fsyncs the directory, so a
    crash leaves either the whole blob or none. Reads can use `local_path` for sendfile.
    """

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root).expanduser().resolve()
        self._uploads = self.root / UPLOADS_DIR
        self._fsync = fsync
        try:
            self._uploads.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageConfigError(
                f"cannot create local storage directory {self._uploads}: {exc.strerror}"
            ) from exc

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    # -- writing -------------------------------------------------------------------------------
    def upload(self) -> Upload:
        path = self._uploads / f"{uuid.uuid4().hex}{UPLOAD_SUFFIX}"
        try:
            return Upload(self, path)
        except OSError as exc:
            raise StorageError(f"cannot start an upload in {self._uploads}: {exc}") from exc

    def commit(self, upload: Upload, key: str) -> BlobInfo:
        self._own(upload)
        target = self._path(key)
        temp = upload._finish_writing(durable=self._fsync)
        size = temp.stat().st_size
        try:
            existing = target.stat()
        except FileNotFoundError:
            existing = None
        except NotADirectoryError:
            raise self._path_clash(key) from None
        if existing is not None and not _is_file(existing):
            raise self._path_clash(key)
        if existing is not None:
            # Content-addressed: the same key with the same size is the same blob. Keep the
            # one readers may already be streaming and drop ours.
            if existing.st_size != size:
                raise KeyConflict(
                    f"{key!r} already holds {existing.st_size} bytes; refusing {size} different bytes"
                )
            upload._mark_committed()
            temp.unlink(missing_ok=True)
            return self._info(key, existing)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # os.replace is atomic; two identical commits racing here both succeed.
            os.replace(temp, target)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise self._path_clash(key) from None
        except OSError as exc:
            raise StorageError(f"cannot commit {key!r} under {self.root}: {exc}") from exc
        upload._mark_committed()
        if self._fsync:
            _fsync_dir(target.parent)
        return self._info(key, target.stat())

    # -- reading -------------------------------------------------------------------------------
    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        path = self._path(key)
        try:
            file = open(path, "rb", buffering=0)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFound(key) from None
        try:
            size = os.fstat(file.fileno()).st_size
            first, stop = clamp_range(key, size, start, end)
            file.seek(first)
        except BaseException:
            file.close()
            raise
        return buffered(LimitedReader(file, stop - first, name=repr(key)))

    def stat(self, key: str) -> BlobInfo:
        try:
            st = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            raise BlobNotFound(key) from None
        if not _is_file(st):
            raise BlobNotFound(key)
        return self._info(key, st)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def local_path(self, key: str) -> Path:
        """The blob's file (for sendfile); `BlobNotFound` if it is not there."""
        path = self._path(key)
        if not path.is_file():
            raise BlobNotFound(key)
        return path

    def delete(self, key: str) -> bool:
        # Empty fan-out directories stay: removing them could race a commit into them.
        try:
            self._path(key).unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return False
        return True

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)
        # Walk only the directory the prefix points into, then filter by the full prefix.
        base_dir = prefix.rpartition("/")[0]
        start = self.root / base_dir if base_dir else self.root
        yield from (key for key in self._walk(start, base_dir) if key.startswith(prefix))

    def cleanup_stale_uploads(self, older_than: timedelta, *, dry_run: bool = False) -> int:
        # Every upload here holds its spool file's lock while its process lives: a dead
        # owner's file goes at once, a live one never (however slow), so age does not matter.
        return self.reclaim_dead_uploads(dry_run=dry_run)

    def reclaim_dead_uploads(self, *, dry_run: bool = False) -> int:
        try:
            entries = [e for e in os.scandir(self._uploads) if e.name.endswith(UPLOAD_SUFFIX)]
        except FileNotFoundError:
            return 0
        return reclaim_spool_files(iter(entries), dry_run=dry_run)

    def check(self) -> None:
        if not os.access(self._uploads, os.W_OK | os.X_OK):
            raise StorageConfigError(f"local storage directory {self._uploads} is not writable")

    # -- helpers -------------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    @staticmethod
    def _path_clash(key: str) -> KeyConflict:
        # On disk a key cannot also be the directory of other keys (S3 has no such limit);
        # content-addressed keys never clash.
        return KeyConflict(f"{key!r} clashes with another key's file or directory on disk")

    def _own(self, upload: Upload) -> None:
        if upload.storage is not self:
            raise StorageError(f"{upload!r} belongs to {upload.storage!r}, not {self!r}")

    def _walk(self, directory: Path, relative: str) -> Iterator[str]:
        try:
            # A directory's keys all start with "name/", so sorting it as "name/" among the
            # files yields keys in plain string order, the order S3 lists them in.
            entries = sorted(
                os.scandir(directory),
                key=lambda e: e.name + "/" if e.is_dir(follow_symlinks=False) else e.name,
            )
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            key = f"{relative}/{entry.name}" if relative else entry.name
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), key)
            elif entry.is_file(follow_symlinks=False):
                yield key

    @staticmethod
    def _info(key: str, st: os.stat_result) -> BlobInfo:
        return BlobInfo(
            key=key,
            size=st.st_size,
            mtime=datetime.fromtimestamp(st.st_mtime, UTC),
            etag=f"{st.st_size:x}-{st.st_mtime_ns:x}",
        )


def _is_file(st: os.stat_result) -> bool:
    return stat_module.S_ISREG(st.st_mode)


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable; some filesystems refuse fsync on directories, which is fine."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)
