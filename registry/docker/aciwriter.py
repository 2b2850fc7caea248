"""Streaming ACI output: tar -> image-ID hash -> compressor -> temporary file -> atomic rename."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Any

from registry.docker.errors import DockerError

COMPRESSIONS = ("gzip", "none", "bzip2", "xz")


class _HashingWriter(io.RawIOBase):
    """Hashes the uncompressed tar (that is what the appc image ID covers) on its way out."""

    def __init__(self, downstream: IO[bytes]) -> None:
        super().__init__()
        self.downstream = downstream
        self.sha512 = hashlib.sha512()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sha512.update(data)
        self.downstream.write(data)
        return len(data)


def _compressor(raw: IO[bytes], compression: str) -> IO[bytes]:
    if compression == "gzip":
        # Level 6 (Go's default, what docker2aci produced) and mtime 0 for reproducible bytes.
        return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0)
    if compression == "bzip2":
        return bz2.BZ2File(raw, "wb")
    if compression == "xz":
        return lzma.LZMAFile(raw, "wb")
    if compression == "none":
        return raw
    raise DockerError(f"unknown compression {compression!r} (one of {', '.join(COMPRESSIONS)})",
                      reason="bad-reference")


class ACIWriter:
    """Writes one ACI to a temporary sibling of `path`; `commit()` renames it into place.

    Used as a context manager: leaving the block without `commit()` (an error anywhere) removes
    the temporary file, so a failed conversion leaves nothing behind.
    """

    def __init__(self, path: Path, compression: str = "gzip") -> None:
        self.path = path
        self.compression = compression
        self.image_id: str | None = None
        self._temp: Path | None = None

    def __enter__(self) -> ACIWriter:
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part",
                                    dir=self.path.parent)
        self._temp = Path(name)
        # mkstemp makes the file private; an ACI is an ordinary file, readable as umask allows.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        self._file = os.fdopen(fd, "wb")
        self._compressed = _compressor(self._file, self.compression)
        self._hashing = _HashingWriter(self._compressed)
        # tarfile's stream buffer is re-sliced on every write: keep it at its small default.
        self._tar = tarfile.open(fileobj=self._hashing, mode="w|", format=tarfile.PAX_FORMAT)
        return self

    def add_manifest(self, manifest_json: bytes) -> None:
        info = tarfile.TarInfo("manifest")
        info.size, info.mode = len(manifest_json), 0o644
        self._tar.addfile(info, io.BytesIO(manifest_json))
        root = tarfile.TarInfo("rootfs")
        root.type, root.mode = tarfile.DIRTYPE, 0o755
        self._tar.addfile(root)

    def add(self, info: tarfile.TarInfo, data: IO[bytes] | None = None) -> None:
        """Add a rootfs entry; `info.name` is relative to rootfs/ (the prefix is added here)."""
        info.name = f"rootfs/{info.name}"
        if info.islnk():
            info.linkname = f"rootfs/{info.linkname}"
        self._tar.addfile(info, data if info.isreg() else None)

    def commit(self) -> str:
        self._tar.close()
        if self._compressed is not self._file:
            self._compressed.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        assert self._temp is not None
        os.replace(self._temp, self.path)
        self._temp = None
        self.image_id = f"sha512-{self._hashing.sha512.hexdigest()}"
        return self.image_id

    def __exit__(self, *exc_info: object) -> None:
        if self._temp is not None:
            for closer in (self._tar.close, self._compressed.close, self._file.close):
                try:
                    closer()
                except (OSError, ValueError, tarfile.TarError):
                    pass
            self._temp.unlink(missing_ok=True)


def copy_header(source: tarfile.TarInfo, name: str, linkname: str = "") -> tarfile.TarInfo:
    """A fresh header for the output: same type, ownership, mode, times and xattrs, new name."""
    info = tarfile.TarInfo(name)
    info.type = source.type if source.type not in (tarfile.AREGTYPE, tarfile.CONTTYPE) \
        else tarfile.REGTYPE
    info.mode, info.uid, info.gid = source.mode, source.uid, source.gid
    info.uname, info.gname, info.mtime = source.uname, source.gname, source.mtime
    info.size = source.size if info.isreg() else 0
    info.linkname = linkname or source.linkname
    info.devmajor, info.devminor = source.devmajor, source.devminor
    # Keep extended attributes (file capabilities, SELinux labels); names are set anew.
    info.pax_headers = {k: v for k, v in source.pax_headers.items()
                        if k.startswith("SCHILY.xattr.") or k.startswith("LIBARCHIVE.xattr.")}
    return info
