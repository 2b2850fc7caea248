"""What a build begins from: nothing, a host directory, a rootfs tarball or an existing ACI."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from registry.aci import extract_aci
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


def _open_tar(source: Path) -> tarfile.TarFile:
    try:
        # Streaming mode: one pass, any of tar's compressions, no seeking.
        return tarfile.open(source, "r|*")
    except (tarfile.TarError, OSError) as error:
        raise BuildError(f"{source}: not a directory, a rootfs tarball or an ACI ({error})") from None


def _member_name(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def _is_aci(source: Path) -> bool:
    """An ACI has a top-level `manifest`; anything else is taken as a tarball of a rootfs."""
    with _open_tar(source) as archive:
        try:
            return any(_member_name(member.name) == "manifest" for member in archive)
        except (tarfile.TarError, OSError, EOFError) as error:
            raise BuildError(f"{source}: broken tar archive ({error})") from None


def _from_rootfs_tarball(image_dir: Path, source: Path, scratch: Path) -> None:
    """Re-pack the tarball as an ACI (entries under rootfs/, an empty manifest) and let the
    format core's safe extraction unpack it: one set of traversal and link checks for both."""
    with tempfile.NamedTemporaryFile(dir=scratch, prefix="rootfs-", suffix=".aci") as wrapped:
        with tarfile.open(fileobj=wrapped, mode="w|", format=tarfile.PAX_FORMAT) as out:
            manifest = empty_manifest_json()
            info = tarfile.TarInfo("manifest")
            info.size, info.mode = len(manifest), 0o644
            out.addfile(info, io.BytesIO(manifest))
            root = tarfile.TarInfo("rootfs")
            root.type, root.mode = tarfile.DIRTYPE, 0o755
            out.addfile(root)
            with _open_tar(source) as archive:
                try:
                    for member in archive:
                        _add_under_rootfs(out, archive, member, source)
                except (tarfile.TarError, OSError, EOFError) as error:
                    raise BuildError(f"{source}: broken tar archive ({error})") from None
        wrapped.flush()
        extract_aci(wrapped.name, image_dir)


def _add_under_rootfs(out: tarfile.TarFile, archive: tarfile.TarFile, member: tarfile.TarInfo,
                      source: Path) -> None:
    name = _member_name(member.name)
    if name in ("", "."):
        return  # the tarball's own root: rootfs/ is already there
    if member.name.startswith("/"):
        raise BuildError(f"{source}: refusing entry with an absolute path {member.name!r}")
    member.name = f"rootfs/{name}"
    if member.islnk():
        member.linkname = f"rootfs/{_member_name(member.linkname)}"
    out.addfile(member, archive.extractfile(member) if member.isreg() else None)


