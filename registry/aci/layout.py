"""The ACI layout rules, checked entry by entry while the tar streams past: exactly
`manifest` + `rootfs/` at the top, and below rootfs/ the path and link rules every archive
reader shares (paths.py). Reading and extraction share this one gatekeeper."""

from __future__ import annotations

from registry.aci.errors import ArchiveError
from registry.aci.manifest import MAX_MANIFEST_SIZE
from registry.aci.paths import TreeRules, normalize
from registry.aci.tarstream import DIRECTORY, REGULAR, Sink, TarEntry

MANIFEST = "manifest"
ROOTFS = "rootfs"


class LayoutChecker:
    """Accepts or refuses each entry; collects the manifest; `finish()` checks what must exist.

    `accepted(entry, path)` is what a subclass overrides to act on an entry that passed
    (extraction writes it); it returns the sink for the entry's data.
    """

    def __init__(self, *, allow_devices: bool = True) -> None:
        self.allow_devices = allow_devices
        self.manifest_bytes: bytes | None = None
        self._manifest_buffer = bytearray()
        self._rules = TreeRules(ROOTFS, allow_devices=allow_devices)
        self._manifest_entry: TarEntry | None = None
        self._seen_top: set[str] = set()  # manifest and rootfs, each allowed once
        self.has_rootfs = False

    # EntryHandler protocol

    def begin(self, entry: TarEntry) -> Sink | None:
        path = normalize(entry.name)
        if not path:
            return None  # the archive's own "./": carries nothing
        if path == MANIFEST or path == ROOTFS:
            if path in self._seen_top:
                raise ArchiveError(f"{path}: duplicate entry in archive",
                                   reason="duplicate-entry")
            self._seen_top.add(path)
        if path == MANIFEST:
            self._check_manifest(entry)
            self._manifest_entry = entry
            return self._manifest_buffer.extend
        if path == ROOTFS:
            if entry.type != DIRECTORY:
                raise ArchiveError(f"rootfs: is a {entry.type_name}, not a directory",
                                   reason="rootfs-not-directory")
            self.has_rootfs = True
            self._rules.seen[ROOTFS] = DIRECTORY
            return self.accepted(entry, path)
        if not path.startswith(ROOTFS + "/"):
            raise ArchiveError(f"{path}: unexpected entry outside rootfs/ (an ACI holds only"
                               " manifest and rootfs/)", reason="extra-entry")
        target = self._rules.check(path, entry.type, entry.type_name, entry.linkname)
        if target:
            entry.linkname = target
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
