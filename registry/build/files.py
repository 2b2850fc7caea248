"""Copying host files into the image's rootfs without ever writing outside it.

Paths inside the rootfs are resolved the way the image will see them: an absolute symlink
(`/bin -> /usr/bin`) is followed relative to the rootfs, never to the host's root. A copy is
first staged in full next to the rootfs and then moved into place by renames, so a copy that
fails halfway (unreadable file, FIFO in the tree) leaves the rootfs as it was.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path, PurePosixPath

from registry.build.errors import BuildError

_MAX_SYMLINK_HOPS = 40


def resolve_in_root(root: Path, path: str, *, follow_last: bool = True) -> Path:
    """`path` (absolute or not, as seen inside the image) as a host path under `root`."""
    pending = list(reversed(_parts(path)))
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink() and (follow_last or pending):
            hops += 1
            if hops > _MAX_SYMLINK_HOPS:
                raise BuildError(f"{path}: too many levels of symbolic links in the image")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending.extend(reversed(_parts(target)))
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def _parts(path: str) -> list[str]:
    return [part for part in PurePosixPath(path).parts if part not in ("/", ".", "")]


def copy_entry(source: str, destination: str) -> None:
    """shutil's copy function, refusing what an image cannot carry as a plain copy."""
    mode = os.lstat(source).st_mode
    if not stat.S_ISREG(mode):
        raise BuildError(f"{source}: not a regular file, directory or symlink; refusing to copy it")
    shutil.copy2(source, destination, follow_symlinks=False)


def _stage(source: Path, staging: Path) -> Path:
    """Copy `source` (file, symlink or tree) to `staging/entry`; symlinks stay symlinks."""
    staged = staging / "entry"
    try:
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, staged, symlinks=True, copy_function=copy_entry)
        elif source.is_symlink():
            os.symlink(os.readlink(source), staged)
        else:
            copy_entry(str(source), str(staged))
    except shutil.Error as error:
        first = error.args[0][0] if error.args and error.args[0] else ("", "", str(error))
        raise BuildError(f"{first[0]}: {first[2]}") from None
    except OSError as error:
        raise BuildError(f"{error.filename or source}: {error.strerror or error}") from None
    return staged


def _check_merge(staged: Path, target: Path, shown: str) -> None:
    """Fail before anything moves if a staged file would land on a directory or vice versa."""
    if not target.exists() and not target.is_symlink():
        return
    staged_is_dir = staged.is_dir() and not staged.is_symlink()
    target_is_dir = target.is_dir() and not target.is_symlink()
    if target_is_dir and not staged_is_dir:
        raise BuildError(f"{shown}: is a directory in the image; cannot replace it with a file")
    if staged_is_dir and not target_is_dir and not target.is_symlink():
        raise BuildError(f"{shown}: is a file in the image; cannot replace it with a directory")
    if staged_is_dir and target_is_dir:
        for entry in os.scandir(staged):
            _check_merge(Path(entry.path), target / entry.name, f"{shown.rstrip('/')}/{entry.name}")


def _merge(staged: Path, target: Path) -> None:
    staged_is_dir = staged.is_dir() and not staged.is_symlink()
    if staged_is_dir and target.is_dir() and not target.is_symlink():
        for entry in os.scandir(staged):
            _merge(Path(entry.path), target / entry.name)
        return
    if target.is_symlink() and staged_is_dir:
        target.unlink()  # the copy replaces the symlink itself, never what it points to
    os.replace(staged, target)


def copy_into_rootfs(source: Path, rootfs: Path, destination: str, *, staging_parent: Path,
                     context_dir: Path) -> None:
    """acbuild's `copy SRC DST`: DST becomes a copy of SRC (a directory merges into DST)."""
    _copy_all([(source, destination)], rootfs, staging_parent=staging_parent,
              context_dir=context_dir)


def copy_into_directory(sources: list[Path], rootfs: Path, directory: str, *,
                        staging_parent: Path, context_dir: Path) -> None:
    """acbuild's `copy-to-dir SRC... DIR`: each SRC lands in DIR under its own base name."""
    target_dir = resolve_in_root(rootfs, directory)
    if target_dir.exists() and not target_dir.is_dir():
        raise BuildError(f'target "{directory}" is not a directory')
    pairs = []
    for source in sources:
        name = Path(os.path.normpath(source)).name
        inside = directory if name in ("", "..") else str(PurePosixPath("/", *_parts(directory), name))
        pairs.append((source, inside))
    _copy_all(pairs, rootfs, staging_parent=staging_parent, context_dir=context_dir,
              also_create=target_dir)


def _copy_all(pairs: list[tuple[Path, str]], rootfs: Path, *, staging_parent: Path,
              context_dir: Path, also_create: Path | None = None) -> None:
    """Stage every copy and check every conflict first; only then touch the rootfs."""
    for source, _ in pairs:
        if not source.exists() and not source.is_symlink():
            raise BuildError(f"no such file or directory: {source}")
        if source.is_dir() and not source.is_symlink() and contains(source, context_dir):
            raise BuildError(f"{source} contains the build context {context_dir}; refusing to copy it")
    with tempfile.TemporaryDirectory(dir=staging_parent, prefix="staging-") as staging:
        planned: list[tuple[Path, Path]] = []
        for index, (source, destination) in enumerate(pairs):
            target = resolve_in_root(rootfs, destination, follow_last=False)
            source_is_dir = source.is_dir() and not source.is_symlink()
            if target == rootfs and not source_is_dir:
                raise BuildError(f"{destination}: cannot replace the image's root directory with a file")
            slot = Path(staging) / str(index)
            slot.mkdir()
            staged = _stage(source, slot)
            _check_merge(staged, target, destination)
            planned.append((staged, target))
        if also_create is not None:
            _make_directories(rootfs, also_create)
        for staged, target in planned:
            if target != rootfs:
                _make_directories(rootfs, target.parent)
            _merge(staged, target)


def _make_directories(rootfs: Path, directory: Path) -> None:
    """mkdir -p inside the rootfs (the path is already resolved, so no symlink can escape)."""
    if directory != rootfs and not directory.is_relative_to(rootfs):
        raise BuildError(f"{directory} is outside the image")
    try:
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as error:
        shown = "/" + str(directory.relative_to(rootfs))
        raise BuildError(f"cannot create directory {shown} in the image: {error.strerror}") from None


def contains(directory: Path, inner: Path) -> bool:
    """Whether `inner` is `directory` or lies below it (symlinks resolved)."""
    return inner.resolve().is_relative_to(directory.resolve())
