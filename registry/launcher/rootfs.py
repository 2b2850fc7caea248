"""Each app's root filesystem: an overlayfs over the store's shared tree, or a private copy.

The overlay is mounted by the stage1 inside the app's own mount namespace, so it disappears with
the app and no mount is ever left on the host. A pod prepared in copy mode needs no mount at all.
"""

from __future__ import annotations

import os
from stat import S_ISLNK

from . import linux
from .pods import read_text, write_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import TypeVar

    from _typeshed import StrPath

    RootPath = TypeVar("RootPath", str, Path)

# Paths are plain strings and os.path (pathlib costs every start ~6 ms of imports); what callers
# pass in may be str or os.PathLike.


def touch(path: StrPath, mode: int = 0o666) -> None:
    """Create `path` as an empty file unless it exists (pathlib's `touch`, minus its update of
    an existing file's times, which no caller wants)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, mode))


def overlay_supported_cached(work_parent: StrPath, cache: StrPath) -> bool:
    """`overlay_supported`, remembered per filesystem and kernel in `cache` (a probe costs a fork
    and a mount on every prepare otherwise)."""
    key = f"{os.stat(work_parent).st_dev}:{os.uname().release}"
    try:
        saved_key, _, answer = read_text(cache).strip().rpartition("=")
        if saved_key == key:
            return answer == "yes"
    except OSError:
        pass
    supported = overlay_supported(work_parent)
    write_atomic(cache, f"{key}={'yes' if supported else 'no'}\n")
    return supported


def overlay_supported(work_parent: StrPath) -> bool:
    """Can overlayfs use directories on this filesystem as upper and work? Tried, not guessed."""
    try:
        if "overlay" not in read_text("/proc/filesystems"):
            return False
    except OSError:
        return False
    import tempfile  # here: the probe runs once per filesystem and kernel (see the cache above)

    probe = tempfile.mkdtemp(prefix=".overlay-probe-", dir=work_parent)
    try:
        dirs = [os.path.join(probe, sub) for sub in ("lower", "upper", "work", "merged")]
        for directory in dirs:
            os.mkdir(directory)
        pid = os.fork()
        if pid == 0:  # try in a throwaway mount namespace: nothing to unmount afterwards
            try:
                linux.unshare(linux.CLONE_NEWNS)
                linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
                mount_overlay(*dirs)
                os._exit(0)
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status) == 0
    finally:
        import shutil

        shutil.rmtree(probe, ignore_errors=True)


# Each app's lowerdir (`apps/<app>/lower`), as this process wrote it, by "<uuid>/apps/<app>"
# (the pod's directory moves between states, its tail does not): `pyrkt run` prepares the pod
# and forks its apps, and an app just forked would otherwise pay its first text-mode read of a
# file (~0.1 ms of every start) for what its parent wrote. Any other process reads the file.
_LOWERS: dict[str, str] = {}


def _app_key(app_dir: str) -> str:
    return "/".join(os.path.normpath(app_dir).split("/")[-3:])


def save_lower(app_dir: str, lower: str) -> None:
    """Record the lowerdir of an app's overlay (the store's shared tree of its image)."""
    write_atomic(os.path.join(app_dir, "lower"), lower)
    _LOWERS[_app_key(app_dir)] = lower


def lower_of(app_dir: str) -> str:
    """The lowerdir `save_lower` recorded for the app."""
    known = _LOWERS.get(_app_key(app_dir))
    return known if known is not None else read_text(os.path.join(app_dir, "lower")).strip()


# The mount points the builtin stage1 makes in every app's root (sandbox.build_root: /proc,
# /dev, /sys, /tmp; /etc/hosts to bind the pod's file onto), made once per store, in
# `<store>/mount-points`, and laid under each app's overlay as its lowest layer: an image
# without them (a static binary alone) then costs each start no mkdir or file creation in its
# upper layer (~0.3 ms: overlayfs creates on the upper filesystem), and what an image has of
# its own, a file or a symlink at one of these paths too, covers the empty one below it.
MOUNT_POINTS = "mount-points"
_POINT_DIRS = ("proc", "dev", "sys", "tmp", "etc")
_POINT_FILES = ("etc/hosts",)


def ensure_mount_points(store_dir: str) -> None:
    """Make the store's mount-point layer unless it is there (made aside, then renamed into
    place: an overlay's lower layer is never changed while one is mounted)."""
    target = os.path.join(store_dir, MOUNT_POINTS)
    if os.path.isdir(target):
        return
    import tempfile  # here: once per store

    # (made in the store's tmp/: the same filesystem, and what a crash leaves there the
    # store's gc removes)
    work = tempfile.mkdtemp(prefix=f"{MOUNT_POINTS}-", dir=os.path.join(store_dir, "tmp"))
    try:
        os.chmod(work, 0o755)
        for name in _POINT_DIRS:
            os.mkdir(os.path.join(work, name))
            os.chmod(os.path.join(work, name), 0o755)
        for name in _POINT_FILES:
            touch(os.path.join(work, name))
            os.chmod(os.path.join(work, name), 0o644)
        try:
            os.rename(work, target)
        except OSError:
            if not os.path.isdir(target):  # (else another prepare made it meanwhile)
                raise
    finally:
        if os.path.exists(work):
            import shutil

            shutil.rmtree(work, ignore_errors=True)


def overlay_lower(app_dir: str) -> str:
    """The lowerdir option of an app's overlay: its image's tree, over the store's mount-point
    layer when there is one (an app's directory is `<store>/pods/<state>/<uuid>/apps/<app>`)."""
    lower = lower_of(app_dir)
    store_dir = os.path.normpath(app_dir)
    for _ in range(5):
        store_dir = os.path.dirname(store_dir)
    points = os.path.join(store_dir, MOUNT_POINTS)
    if ":" in lower or ":" in points or not os.path.isdir(points):
        return lower  # (a ':' would split the option: the layer is an optimisation only)
    return f"{lower}:{points}"


def mount_overlay(lower: StrPath, upper: StrPath, work: StrPath, target: StrPath) -> None:
    options = f"lowerdir={os.fspath(lower)},upperdir={os.fspath(upper)},workdir={os.fspath(work)}"
    linux.mount("overlay", os.fspath(target), "overlay", 0, options)


def resolve_in_root(root: RootPath, path: str, *, create_dirs: bool = False) -> RootPath:
    """`path` inside `root` with symlinks followed as if `root` were `/` (never leaving it).

    An image may hold a symlink such as `/data -> /etc`; a volume mounted at `/data` must land on
    `root/etc`, not on the host's `/etc`. The answer is of the root's kind: a str for a str, a
    pathlib path for one (for callers that still pass pathlib's).
    """
    current, _ = _walk(os.fspath(root), path, create_dirs, create_dirs)
    return current if isinstance(root, str) else type(root)(current)


def file_in_root(root: str, path: str) -> tuple[str, bool]:
    """Where a file bound at `path` lands inside `root` (symlinks followed as `resolve_in_root`
    follows them, the last one too), with every missing directory on the way made; and
    whether something is there already (else the caller makes the file to bind onto)."""
    return _walk(root, path, True, False)


def _walk(root: str, path: str, create_dirs: bool, create_last: bool) -> tuple[str, bool]:
    # One lstat per component (a link is followed, a missing one made when asked): the app's
    # start resolves every mount point this way, where islink and then exists cost two.
    parts = [p for p in path.split("/") if p and p != "."]
    top = os.path.normpath(root)
    current = top
    hops = 0
    found = True
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = os.path.dirname(current) if current != top else top
            found = True
            continue
        candidate = os.path.join(current, part)
        try:
            mode: int | None = os.lstat(candidate).st_mode
        except OSError:
            mode = None
        if mode is not None and S_ISLNK(mode):
            hops += 1
            if hops > 40:
                raise OSError(f"too many symlinks resolving {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = top
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        found = mode is not None
        if not found and create_dirs and (parts or create_last):
            os.mkdir(candidate, 0o755)
            found = True
        current = candidate
    return current, found
