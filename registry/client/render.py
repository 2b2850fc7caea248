"""Rendering layered images: dependencies applied, pathWhitelist honoured (appc's acirenderer rules).

The layer list comes upper first (the image itself, then its dependencies as
`ImageStore.dependency_chain` flattens them). A path provided by an upper layer wins; a layer's
own non-empty pathWhitelist limits its non-directory entries; the whitelist of the nearest upper
image limits everything below it; nothing is placed under a path an upper layer made a file.
Each layer is extracted safely by registry.aci.extract_aci, then its entries are moved (renamed,
not copied) into the result.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from .errors import StoreError

# Function-local imports keep `pyrkt` start-up fast: modules load when a command uses them.
TYPE_CHECKING = False  # typing is for the type checker: not loaded by a run (~2 ms)
if TYPE_CHECKING:
    from typing import Any

    Layer = tuple[Path, int, dict[str, Any]]  # (ACI file, level, manifest as a dict)


class DependencyError(StoreError):
    """A dependency cannot be resolved from the store (or the chain is cyclic)."""


def remove_tree(path: Path, ignore_errors: bool = True) -> None:
    """shutil.rmtree, imported here and not at the top: shutil brings bz2, lzma and zlib,
    ~2 ms of every `pyrkt run` and `pyrkt image list`, which never delete a tree."""
    import shutil

    shutil.rmtree(path, ignore_errors=ignore_errors)


def _whitelist(manifest: dict[str, Any]) -> set[str] | None:
    paths = manifest.get("pathWhitelist") or []
    if not paths:
        return None
    return {posixpath.normpath(p.lstrip("/")) for p in paths}


def _upper_whitelist(layers: list[Layer], position: int) -> set[str] | None:
    """The whitelist imposed on layer `position` by the images above it (acirenderer's rule)."""
    found: set[str] | None = None
    level = layers[position][1]
    for index in range(position, -1, -1):
        upper_level = layers[index][1]
        if upper_level < level:
            wl = _whitelist(layers[index][2])
            if wl is not None:
                found = wl
        level = upper_level
    return found


def render_layers(layers: list[Layer], manifest: bytes, out: Path, work: Path) -> None:
    """Render `layers` into the new directory `out` (`manifest` + `rootfs/`)."""
    from registry.aci import extract_aci

    if len(layers) == 1 and _whitelist(layers[0][2]) is None:
        extract_aci(layers[0][0], out)  # the common case: nothing to merge
        return
    rootfs = out / "rootfs"
    rootfs.mkdir(parents=True)
    kinds: dict[str, bool] = {}  # rendered path -> is a directory
    for position, (aci, _level, layer_manifest) in enumerate(layers):
        scratch = work / f"layer-{position}"
        extract_aci(aci, scratch)
        if position == 0:
            _copy_dir_meta(scratch / "rootfs", rootfs)  # the image's own rootfs mode and owner
        _merge(scratch / "rootfs", rootfs, kinds, _whitelist(layer_manifest),
               _upper_whitelist(layers, position))
        remove_tree(scratch)
    (out / "manifest").write_bytes(manifest)


def _merge(source: Path, dest: Path, kinds: dict[str, bool], own: set[str] | None,
           upper: set[str] | None) -> None:
    """Move the allowed entries of one extracted layer's rootfs into the rendered rootfs."""
    for top, dirnames, filenames in os.walk(source):
        rel_top = os.path.relpath(top, source)
        for name in sorted(dirnames) + sorted(filenames):
            rel = posixpath.normpath(posixpath.join(rel_top, name)) if rel_top != "." else name
            src = Path(top, name)
            is_dir = src.is_dir() and not src.is_symlink()
            if not is_dir and own is not None and rel not in own:
                continue
            if upper is not None and rel not in upper:
                continue
            if rel in kinds or _under_file(rel, kinds):
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            kinds[rel] = is_dir
            if is_dir:
                target.mkdir(exist_ok=True)
                _copy_dir_meta(src, target)
            else:
                os.rename(src, target)
        # symlinks to directories are files here: never walk into them
        dirnames[:] = [d for d in dirnames if not Path(top, d).is_symlink()]


def _under_file(rel: str, kinds: dict[str, bool]) -> bool:
    parent = posixpath.dirname(rel)
    while parent:
        if kinds.get(parent) is False:
            return True
        parent = posixpath.dirname(parent)
    return False


def _copy_dir_meta(src: Path, dest: Path) -> None:
    try:
        info = src.lstat()
    except FileNotFoundError:
        return
    os.chmod(dest, info.st_mode & 0o7777)
    if os.geteuid() == 0:
        os.chown(dest, info.st_uid, info.st_gid)
