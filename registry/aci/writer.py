"""Writing ACIs from a manifest and a rootfs directory.

Reproducible mode (the default) makes the bytes depend on the content only: entries sorted
by name, mtimes fixed to SOURCE_DATE_EPOCH (or 0), owners 0:0 with empty names (unless
ownership is preserved), gzip headers without mtime or filename."""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import os
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from registry.aci.compression import BZIP2, COMPRESSIONS, GZIP, XZ
from registry.aci.errors import ACIError
from registry.aci.layout import MANIFEST, ROOTFS
from registry.aci.manifest import ImageManifest
from registry.aci.reader import IMAGE_ID_PREFIX

COPY_BUFFER = 1 << 20


class _Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def _compressor(compression: str) -> _Compressor:
    if compression == GZIP:
        # wbits 31: a gzip header with mtime 0 and no file name, as reproducibility needs.
        return zlib.compressobj(6, zlib.DEFLATED, 31)
    if compression == BZIP2:
        return bz2.BZ2Compressor(9)
    if compression == XZ:
        return lzma.LZMACompressor(format=lzma.FORMAT_XZ)
    return _Identity()


class _HashingCompressor(io.RawIOBase):
    """The file object tarfile writes to: hashes the tar, compresses it, passes it on."""

    def __init__(self, out: BinaryIO, compression: str) -> None:
        super().__init__()
        self._out = out
        self._compressor = _compressor(compression)
        self._hash = hashlib.sha512()
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._hash.update(data)
        self._position += len(data)
        compressed = self._compressor.compress(data)
        if compressed:
            self._out.write(compressed)
        return len(data)

    def tell(self) -> int:
        return self._position

    def finish(self) -> str:
        self._out.write(self._compressor.flush())
        return IMAGE_ID_PREFIX + self._hash.hexdigest()


def _manifest_bytes(manifest: ImageManifest | dict[str, Any] | bytes | str) -> bytes:
    if isinstance(manifest, ImageManifest):
        return manifest.to_json()
    if isinstance(manifest, dict):
        return ImageManifest.from_dict(manifest).to_json()
    ImageManifest.from_json(manifest)  # validate; keep the author's bytes
    return manifest.encode() if isinstance(manifest, str) else bytes(manifest)


def source_date_epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    if not value:
        return 0
    try:
        return max(int(value), 0)
    except ValueError:
        raise ACIError(f"SOURCE_DATE_EPOCH: {value!r} is not a whole number of seconds",
                       reason="bad-environment") from None


class _TreeWriter:
    """Adds rootfs/ depth first, siblings sorted by name, hard links kept as links."""

    def __init__(self, archive: tarfile.TarFile, *, reproducible: bool,
                 preserve_ownership: bool) -> None:
        self._archive = archive
        self._reproducible = reproducible
        self._preserve_ownership = preserve_ownership
        self._mtime = source_date_epoch() if reproducible else None

    def normalized(self, info: tarfile.TarInfo) -> tarfile.TarInfo:
        if self._mtime is not None:
            info.mtime = self._mtime
        else:
            info.mtime = int(info.mtime)
        if not self._preserve_ownership:
            info.uid = info.gid = 0
            info.uname = info.gname = ""
        return info

    def add_tree(self, root: Path) -> None:
        info = self.normalized(self._archive.gettarinfo(str(root), ROOTFS))
        self._archive.addfile(info)
        self._add_children(root, ROOTFS)

    def _add_children(self, directory: Path, arcdir: str) -> None:
        try:
            names = sorted(os.listdir(directory), key=os.fsencode)
        except OSError as error:
            raise ACIError(f"{directory}: cannot list ({error.strerror})",
                           reason="bad-rootfs") from None
        for name in names:
            path = directory / name
            arcname = f"{arcdir}/{name}"
            try:
                info = self._archive.gettarinfo(str(path), arcname)
            except OSError as error:
                raise ACIError(f"{path}: cannot read ({error.strerror})",
                               reason="bad-rootfs") from None
            if info is None:
                continue  # a socket: tar skips those too
            self.normalized(info)
            if info.isreg():
                self._add_file(path, info)
            else:
                self._archive.addfile(info)
            if info.isdir():
                self._add_children(path, arcname)

    def _add_file(self, path: Path, info: tarfile.TarInfo) -> None:
        try:
            with open(path, "rb") as handle:
                if os.fstat(handle.fileno()).st_size != info.size:
                    raise ACIError(f"{path}: changed while being written", reason="bad-rootfs")
                self._archive.addfile(info, handle)
        except OSError as error:
            raise ACIError(f"{path}: cannot read ({error.strerror})", reason="bad-rootfs") \
                from None


def write_aci(manifest: ImageManifest | dict[str, Any] | bytes | str,
              rootfs_dir: str | os.PathLike[str], out: str | os.PathLike[str] | BinaryIO, *,
              compression: str = GZIP, reproducible: bool = True,
              preserve_ownership: bool = False) -> str:
    """Write an ACI of `manifest` and the tree `rootfs_dir`; returns its image ID.

    `out` is a path (written to a temporary sibling, renamed into place when complete) or a
    binary file object. Raises ManifestError for a bad manifest, ACIError for the rest.
    """
    if compression not in COMPRESSIONS:
        raise ACIError(f"compression: {compression!r} is not one of {', '.join(COMPRESSIONS)}",
                       reason="bad-compression")
    data = _manifest_bytes(manifest)
    root = Path(rootfs_dir)
    if not root.is_dir() or root.is_symlink():
        raise ACIError(f"{root}: rootfs is not a directory", reason="bad-rootfs")
    if not isinstance(out, str | os.PathLike):
        return _write(data, root, out, compression, reproducible, preserve_ownership)
    target = Path(out)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                             suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            image_id = _write(data, root, handle, compression, reproducible, preserve_ownership)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return image_id


def _write(manifest: bytes, root: Path, out: BinaryIO, compression: str, reproducible: bool,
           preserve_ownership: bool) -> str:
    sink = _HashingCompressor(out, compression)
    archive = tarfile.TarFile(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT,
                              copybufsize=COPY_BUFFER)  # type: ignore[arg-type]
    tree = _TreeWriter(archive, reproducible=reproducible, preserve_ownership=preserve_ownership)
    info = tarfile.TarInfo(MANIFEST)
    info.size, info.mode, info.type = len(manifest), 0o644, tarfile.REGTYPE
    if not reproducible:
        info.mtime = int(os.stat(root).st_mtime)
    tree.normalized(info)
    archive.addfile(info, io.BytesIO(manifest))
    tree.add_tree(root)
    archive.close()
    return sink.finish()



