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

from .errors import StoreError

# Function-local imports keep `pyrkt` start-up fast: modules load when a command uses them.
# typing is for the type checker (~2 ms), and paths are strings (pathlib: ~6 ms of a start).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    PathLike = str | os.PathLike[str]
    Layer = tuple[str, int, dict[str, Any]]  # (ACI file, level, manifest as a dict)

_join = os.path.join


class DependencyError(StoreError):
    """A dependency cannot be resolved from the store (or the chain is cyclic)."""


def remove_tree(path: PathLike, ignore_errors: bool = True) -> None:
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


def render_layers(layers: list[Layer], manifest: bytes, out: PathLike, work: PathLike) -> None:
    """Render `layers` into the new directory `out` (`manifest` + `rootfs/`)."""
    from registry.aci import extract_aci

    if len(layers) == 1 and _whitelist(layers[0][2]) is None:
        extract_aci(layers[0][0], out)  # the common case: nothing to merge
        return
    rootfs = _join(out, "rootfs")
    os.makedirs(rootfs)
    kinds: dict[str, bool] = {}  # rendered path -> is a directory
    for position, (aci, _level, layer_manifest) in enumerate(layers):
        scratch = _join(work, f"layer-{position}")
        extract_aci(aci, scratch)
        if position == 0:  # the image's own rootfs mode and owner
            _copy_dir_meta(_join(scratch, "rootfs"), rootfs)
        _merge(_join(scratch, "rootfs"), rootfs, kinds, _whitelist(layer_manifest),
               _upper_whitelist(layers, position))
        remove_tree(scratch)
    with open(_join(out, "manifest"), "wb") as handle:
        handle.write(manifest)


def _merge(source: str, dest: str, kinds: dict[str, bool], own: set[str] | None,
           upper: set[str] | None) -> None:
    """Move the allowed entries of one extracted layer's rootfs into the rendered rootfs."""
    for top, dirnames, filenames in os.walk(source):
        rel_top = os.path.relpath(top, source)
        for name in sorted(dirnames) + sorted(filenames):
            rel = posixpath.normpath(posixpath.join(rel_top, name)) if rel_top != "." else name
            src = _join(top, name)
            is_dir = os.path.isdir(src) and not os.path.islink(src)
            if not is_dir and own is not None and rel not in own:
                continue
            if upper is not None and rel not in upper:
                continue
            if rel in kinds or _under_file(rel, kinds):
                continue
            target = _join(dest, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            kinds[rel] = is_dir
            if is_dir:
                try:
                    os.mkdir(target)
                except FileExistsError:
                    if not os.path.isdir(target):
                        raise
                _copy_dir_meta(src, target)
            else:
                os.rename(src, target)
        # symlinks to directories are files here: never walk into them
        dirnames[:] = [d for d in dirnames if not os.path.islink(_join(top, d))]


def _under_file(rel: str, kinds: dict[str, bool]) -> bool:
    parent = posixpath.dirname(rel)
    while parent:
        if kinds.get(parent) is False:
            return True
        parent = posixpath.dirname(parent)
    return False


def _copy_dir_meta(src: str, dest: str) -> None:
    try:
        info = os.lstat(src)
    except FileNotFoundError:
        return
    os.chmod(dest, info.st_mode & 0o7777)
    if os.geteuid() == 0:
        os.chown(dest, info.st_uid, info.st_gid)
