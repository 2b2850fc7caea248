"""The ACI layout rules, checked entry by entry while the tar streams past: exactly
`manifest` + `rootfs/` at the top, no duplicates, no path or link escaping the image, no
entry written through a symlink. Reading and extraction share this one gatekeeper."""

from __future__ import annotations

from registry.aci.errors import ArchiveError
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

MANIFEST = "manifest"
ROOTFS = "rootfs"
MAX_MANIFEST_SIZE = 1 << 20
IMPLICIT_DIRECTORY = "implicit-directory"  # a parent no entry has described (yet)


def normalize(name: str) -> str:
    """The entry's path without `./`, empty components or a trailing slash; "" for the root.
    Absolute names and `..` components are refused outright."""
    if name.startswith("/"):
        raise ArchiveError(f"{name!r}: absolute path in archive", reason="absolute-path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{name!r}: path traversal ('..') in archive", reason="path-traversal")
    return "/".join(parts)


def symlink_escapes(link_path: str, target: str) -> bool:
    """Whether a relative symlink target climbs above rootfs/ from where the link sits.
    Absolute targets are resolved against the image's root at run time, so they stay inside."""
    if target.startswith("/"):
        return False
    depth = link_path.count("/") - 1  # directories between rootfs/ and the link
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


class LayoutChecker:
    """Accepts or refuses each entry; collects the manifest; `finish()` checks what must exist.

    `accepted(entry, path)` is what a subclass overrides to act on an entry that passed
    (extraction writes it); it returns the sink for the entry's data.
    """

    def __init__(self, *, allow_devices: bool = True) -> None:
        self.allow_devices = allow_devices
        self.manifest_bytes: bytes | None = None
        self._manifest_buffer = bytearray()
        self._seen: dict[str, str] = {}  # normalized path -> entry type
        self._manifest_entry: TarEntry | None = None
        self.has_rootfs = False

    # EntryHandler protocol

    def begin(self, entry: TarEntry) -> Sink | None:
        path = normalize(entry.name)
        if not path:
            return None  # the archive's own "./": carries nothing
        earlier = self._seen.get(path)
        if earlier is not None:
            if earlier != IMPLICIT_DIRECTORY:
                raise ArchiveError(f"{path}: duplicate entry in archive",
                                   reason="duplicate-entry")
            if entry.type != DIRECTORY:
                raise ArchiveError(f"{path}: a {entry.type_name}, but earlier entries were"
                                   " inside it", reason="bad-parent")
        if path == MANIFEST:
            self._check_manifest(entry)
            self._seen[path] = entry.type
            self._manifest_entry = entry
            return self._manifest_buffer.extend
        if path == ROOTFS:
            if entry.type != DIRECTORY:
                raise ArchiveError(f"rootfs: is a {entry.type_name}, not a directory",
                                   reason="rootfs-not-directory")
            self.has_rootfs = True
            self._seen[path] = entry.type
            return self.accepted(entry, path)
        if not path.startswith(ROOTFS + "/"):
            raise ArchiveError(f"{path}: unexpected entry outside rootfs/ (an ACI holds only"
                               " manifest and rootfs/)", reason="extra-entry")
        self._check_parents(path)
        self._check_type(entry, path)
        self._seen[path] = entry.type
        return self.accepted(entry, path)

    def end(self, entry: TarEntry) -> None:
        if entry is self._manifest_entry:
            self.manifest_bytes = bytes(self._manifest_buffer)

    def accepted(self, entry: TarEntry, path: str) -> Sink | None:
        return None

    def finish(self) -> bytes:
        """The manifest's bytes, once the whole archive passed."""
        if self.manifest_bytes is None:
            raise ArchiveError("no manifest in archive", reason="missing-manifest")
        if not self.has_rootfs:
            raise ArchiveError("no rootfs/ directory in archive", reason="missing-rootfs")
        return self.manifest_bytes

    # rules

    def _check_manifest(self, entry: TarEntry) -> None:
        if entry.type != REGULAR:
            raise ArchiveError(f"manifest: is a {entry.type_name}, not a regular file",
                               reason="manifest-not-file")
        if entry.size > MAX_MANIFEST_SIZE:
            raise ArchiveError(f"manifest: {entry.size} bytes, more than the"
                               f" {MAX_MANIFEST_SIZE} allowed", reason="manifest-too-large")

    def _check_parents(self, path: str) -> None:
        """No entry may sit below a symlink (writing it would follow the link) or a file."""
        position = path.find("/", len(ROOTFS) + 1)
        while position != -1:
            parent = path[:position]
            parent_type = self._seen.get(parent)
            if parent_type is None:
                self._seen[parent] = IMPLICIT_DIRECTORY  # extraction will create it
            elif parent_type not in (DIRECTORY, IMPLICIT_DIRECTORY):
                reason = "link-escape" if parent_type == SYMLINK else "bad-parent"
                raise ArchiveError(f"{path}: its parent {parent} is not a directory",
                                   reason=reason)
            position = path.find("/", position + 1)

    def _check_type(self, entry: TarEntry, path: str) -> None:
        if entry.type == SYMLINK:
            if not entry.linkname:
                raise ArchiveError(f"{path}: symlink with an empty target", reason="bad-link")
            if symlink_escapes(path, entry.linkname):
                raise ArchiveError(f"{path}: symlink to {entry.linkname!r} points outside"
                                   " rootfs/", reason="link-escape")
        elif entry.type == HARDLINK:
            self._check_hardlink(entry, path)
        elif entry.type in (CHAR, BLOCKDEV, FIFO) and not self.allow_devices:
            raise ArchiveError(f"{path}: {entry.type_name} refused (devices and fifos are not"
                               " allowed here)", reason="device-node")

    def _check_hardlink(self, entry: TarEntry, path: str) -> None:
        try:
            target = normalize(entry.linkname)
        except ArchiveError:
            raise ArchiveError(f"{path}: hard link to {entry.linkname!r} points outside"
                               " rootfs/", reason="link-escape") from None
        if not target.startswith(ROOTFS + "/"):
            raise ArchiveError(f"{path}: hard link to {entry.linkname!r} points outside"
                               " rootfs/", reason="link-escape")
        if self._seen.get(target) not in (REGULAR, HARDLINK):
            raise ArchiveError(f"{path}: hard link to {entry.linkname!r}, which is not an"
                               " earlier file of the archive", reason="link-escape")
        entry.linkname = target
