"""What a build begins from: nothing, a host directory, a rootfs tarball or an existing ACI."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from registry.aci import (
    DEFAULT_MAX_RATIO,
    NONE,
    ACIWriter,
    ArchiveError,
    Limits,
    TarEntry,
    TreeRules,
    extract_aci,
    header_from,
    normalize,
    stream_archive,
)
from registry.build.edits import new_manifest
from registry.build.errors import BuildError
from registry.build.files import contains, copy_entry
from registry.discovery import host_arch, host_os


def host_platform() -> tuple[str, str]:
    """The host's (os, arch) as appc labels spell them, e.g. ("linux", "amd64")."""
    return host_os(), host_arch()


def empty_manifest_json() -> bytes:
    return json.dumps(new_manifest(*host_platform())).encode()


def populate(image_dir: Path, start: str | None, *, scratch: Path,
             notice: Callable[[str], None]) -> None:
    """Create `image_dir` (manifest + rootfs) from `start`; `image_dir` must not exist yet."""
    if start is None:
        _empty(image_dir)
        return
    source = Path(start)
    if source.is_dir():
        if contains(source, image_dir):
            raise BuildError(f"{start} contains the build context; refusing to copy it into itself")
        _from_directory(image_dir, source)
    elif source.is_file():
        if _is_aci(source):
            extract_aci(source, image_dir)
        else:
            notice("manifest is missing, assuming build is beginning with a tar of a rootfs")
            _from_rootfs_tarball(image_dir, source, scratch)
    elif source.exists():
        raise BuildError(f"{start}: not a directory, a rootfs tarball or an ACI")
    else:
        raise BuildError(
            f"no such file or directory: {start} (begin takes a local directory, rootfs"
            " tarball or .aci; fetch remote images with `pyrkt fetch` first)"
        )


def _empty(image_dir: Path) -> None:
    (image_dir / "rootfs").mkdir(mode=0o755, parents=True)
    (image_dir / "manifest").write_bytes(empty_manifest_json())


def _from_directory(image_dir: Path, source: Path) -> None:
    image_dir.mkdir(mode=0o755)
    try:
        shutil.copytree(source, image_dir / "rootfs", symlinks=True, copy_function=copy_entry)
    except shutil.Error as error:
        first = error.args[0][0]
        raise BuildError(f"{first[0]}: {first[2]}") from None
    except OSError as error:
        raise BuildError(f"{error.filename or source}: {error.strerror or error}") from None
    (image_dir / "manifest").write_bytes(empty_manifest_json())


Sink = Any  # where an entry's data goes (the ACI writer's)
# Stream errors: the file is no (readable) tarball at all; any other reason is a rule broken.
_NOT_A_TARBALL = frozenset({"empty", "not-tar", "bad-compression", "truncated", "bad-header"})


class _FoundManifest(Exception):
    """Raised by the scan as soon as a top-level `manifest` shows (no need to read further)."""


class _ManifestScan:
    def begin(self, entry: TarEntry) -> None:
        name = entry.name
        while name.startswith("./"):
            name = name[2:]
        if name.rstrip("/") == "manifest":
            raise _FoundManifest

    def end(self, entry: TarEntry) -> None:
        pass


def _read_tar(source: Path, handler: _ManifestScan | _Repack) -> None:
    """One pass over a tarball by the format core's reader (any of its compressions, one tar
    parser, one set of stream errors); refusals become one-line BuildErrors."""
    try:
        with source.open("rb") as stream:
            stream_archive(stream, handler, Limits(None, DEFAULT_MAX_RATIO), digest=None)
    except ArchiveError as error:
        if error.reason in _NOT_A_TARBALL:
            raise BuildError(f"{source}: not a directory, a rootfs tarball or an ACI ({error})") \
                from None
        raise BuildError(f"{source}: refused: {error}") from None
    except OSError as error:
        raise BuildError(f"{source}: {error.strerror or error}") from None


def _is_aci(source: Path) -> bool:
    """An ACI has a top-level `manifest`; anything else is taken as a tarball of a rootfs."""
    try:
        _read_tar(source, _ManifestScan())
    except _FoundManifest:
        return True
    return False


class _Repack:
    """Copies a rootfs tarball's entries under rootfs/ of an ACI, checked by the same path and
    link rules as any archive (registry.aci.TreeRules)."""

    def __init__(self, writer: ACIWriter) -> None:
        self._writer = writer
        self._rules = TreeRules("")

    def begin(self, entry: TarEntry) -> Sink | None:
        path = normalize(entry.name)
        if not path:
            return None  # the tarball's own root: rootfs/ is already there
        target = self._rules.check(path, entry.type, entry.type_name, entry.linkname)
        return self._writer.begin(header_from(entry, f"rootfs/{path}",
                                              f"rootfs/{target}" if target else None))

    def end(self, entry: TarEntry) -> None:
        if self._writer.entry_open:
            self._writer.end()


def _from_rootfs_tarball(image_dir: Path, source: Path, scratch: Path) -> None:
    """Re-pack the tarball as an ACI (entries under rootfs/, an empty manifest) with the one
    ACI writer, and let the format core's safe extraction unpack it."""
    with tempfile.NamedTemporaryFile(dir=scratch, prefix="rootfs-", suffix=".aci") as wrapped:
        with ACIWriter(wrapped, NONE) as writer:
            writer.add_manifest(empty_manifest_json())
            _read_tar(source, _Repack(writer))
            writer.commit()
        wrapped.flush()
        extract_aci(wrapped.name, image_dir)
