"""Safe, atomic extraction of an ACI into a directory.

Every entry passes the same LayoutChecker as read_aci (no absolute names, no `..`, no link
leaving rootfs/, nothing below a symlink, no duplicates), plus the device/fifo rule. The tree
is built in a temporary sibling of `dest` and renamed into place only once the whole archive
(manifest included) passed; a refused archive leaves `dest` exactly as it was."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from registry.aci.errors import ACIError, ArchiveError
from registry.aci.info import ACIInfo
from registry.aci.layout import ROOTFS, LayoutChecker
from registry.aci.manifest import ImageManifest
from registry.aci.reader import (
    DEFAULT_MAX_RATIO,
    IMAGE_ID_PREFIX,
    Limits,
    opened,
    stream_archive,
)
from registry.aci.tarstream import (
    BLOCKDEV,
    CHAR,
    DIRECTORY,
    FIFO,
    HARDLINK,
    REGULAR,
    SYMLINK,
    Sink,
    TarEntry,
)

if TYPE_CHECKING:
    from registry.aci.reader import Source

_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


@dataclass
class _DirectoryAttributes:
    path: Path
    mode: int
    mtime: float
    uid: int
    gid: int


class _Extractor(LayoutChecker):
    """The layout checker that also writes each accepted entry below `root`."""

    def __init__(self, root: Path, *, rootfs_only: bool, allow_devices: bool) -> None:
        super().__init__(allow_devices=allow_devices)
        self._root = root
        self._rootfs_only = rootfs_only
        self._as_root = os.geteuid() == 0
        self._directories: list[_DirectoryAttributes] = []
        self._open_file: int | None = None

    def target(self, path: str) -> Path:
        """Where archive path `path` (normalized, "rootfs" or below) lands on disk."""
        if self._rootfs_only:
            relative = path[len(ROOTFS) + 1:] if path != ROOTFS else ""
            return self._root / relative if relative else self._root
        return self._root / path

    def accepted(self, entry: TarEntry, path: str) -> Sink | None:
        target = self.target(path)
        if entry.type == DIRECTORY:
            target.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._directories.append(_DirectoryAttributes(target, entry.mode, entry.mtime,
                                                          entry.uid, entry.gid))
            return None
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        if entry.type == REGULAR:
            self._open_file = os.open(target, _FILE_FLAGS, 0o600)
            return self._write
        if entry.type == SYMLINK:
            os.symlink(entry.linkname, target)
        elif entry.type == HARDLINK:
            os.link(self.target(entry.linkname), target, follow_symlinks=False)
        elif entry.type == FIFO:
            os.mkfifo(target, 0o600)
        elif entry.type in (CHAR, BLOCKDEV):
            self._make_device(entry, target)
        if entry.type != HARDLINK:  # a hard link shares its target's attributes
            self._set_attributes(entry, target)
        return None

    def _write(self, piece: memoryview) -> None:
        assert self._open_file is not None
        while piece:
            written = os.write(self._open_file, piece)
            piece = piece[written:]

    def end(self, entry: TarEntry) -> None:
        super().end(entry)
        if self._open_file is not None:
            descriptor, self._open_file = self._open_file, None
            try:
                self._set_attributes(entry, descriptor)
            finally:
                os.close(descriptor)

    def write_manifest(self, data: bytes) -> None:
        entry = self._manifest_entry
        assert entry is not None  # finish() passed: the archive had one
        descriptor = os.open(self._root / "manifest", _FILE_FLAGS, 0o600)
        try:
            self._open_file = descriptor
            self._write(memoryview(data))
            self._set_attributes(entry, descriptor)
        finally:
            self._open_file = None
            os.close(descriptor)

    def close(self) -> None:
        if self._open_file is not None:
            os.close(self._open_file)
            self._open_file = None

    def _make_device(self, entry: TarEntry, target: Path) -> None:
        kind = 0o020000 if entry.type == CHAR else 0o060000
        try:
            os.mknod(target, kind | 0o600, os.makedev(entry.devmajor, entry.devminor))
        except PermissionError:
            raise ArchiveError(f"{entry.name}: creating a {entry.type_name} needs root",
                               reason="device-node") from None

    def _set_attributes(self, entry: TarEntry, where: int | Path) -> None:
        """Owner (when root), then mode (chown clears set-id bits), then mtime, on a path or
        an open descriptor; symlinks keep their own, not their target's."""
        follow = entry.type != SYMLINK
        if self._as_root:
            os.chown(where, entry.uid, entry.gid, follow_symlinks=follow)
        if entry.type != SYMLINK:
            os.chmod(where, entry.mode)
        os.utime(where, (entry.mtime, entry.mtime), follow_symlinks=follow)

    def finish_directories(self) -> None:
        """Directory modes last (deepest first): a read-only directory must not stop the
        extraction of its own children, and writing children changes mtimes."""
        for attributes in reversed(self._directories):
            if self._as_root:
                os.chown(attributes.path, attributes.uid, attributes.gid)
            os.chmod(attributes.path, attributes.mode)
            os.utime(attributes.path, (attributes.mtime, attributes.mtime))


def _check_destination(dest: Path) -> None:
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise ArchiveError(f"{dest}: exists and is not a directory", reason="dest-exists")
    if dest.is_dir() and any(dest.iterdir()):
        raise ArchiveError(f"{dest}: directory is not empty", reason="dest-exists")
    if not dest.parent.is_dir():
        raise ArchiveError(f"{dest.parent}: no such directory", reason="dest-exists")


def _remove_tree(path: Path) -> None:
    """Remove a half-built tree, even one with read-only directories."""
    def make_writable_and_retry(function, name, _excinfo):  # type: ignore[no-untyped-def]
        os.chmod(os.path.dirname(name), 0o700)
        function(name)
    shutil.rmtree(path, onerror=make_writable_and_retry)


def extract_aci(source: Source, dest: str | os.PathLike[str], *, rootfs_only: bool = False,
                allow_devices: bool = False, max_uncompressed: int | None = None,
                max_ratio: float | None = DEFAULT_MAX_RATIO) -> ACIInfo:
    """Extract the ACI `source` (path or binary file object) to `dest`, safely and atomically.

    `dest` must not exist or be an empty directory. With `rootfs_only`, `dest` receives the
    contents of rootfs/ (the manifest is returned, not written). Raises ArchiveError /
    ManifestError and leaves `dest` as it was.
    """
    dest = Path(dest)
    _check_destination(dest)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.extract-"))
    extractor = _Extractor(staging, rootfs_only=rootfs_only, allow_devices=allow_devices)
    try:
        with opened(source) as stream:
            digest, compression, total = stream_archive(
                stream, extractor, Limits(max_uncompressed, max_ratio))
        image_id = IMAGE_ID_PREFIX + digest
        manifest_bytes = extractor.finish()
        manifest = ImageManifest.from_json(manifest_bytes)
        if not rootfs_only:
            extractor.write_manifest(manifest_bytes)
        extractor.finish_directories()
        if not rootfs_only:
            os.chmod(staging, 0o755)  # mkdtemp made it 0700; the rootfs entry set its own
        if dest.is_dir():
            dest.rmdir()
        os.rename(staging, dest)
    except ACIError:
        extractor.close()
        _remove_tree(staging)
        raise
    except OSError as error:
        extractor.close()
        _remove_tree(staging)
        raise ArchiveError(f"extraction failed: {error}", reason="extract-failed") from None
    except BaseException:
        extractor.close()
        _remove_tree(staging)
        raise
    return ACIInfo(image_id, manifest, manifest_bytes, compression, total)
