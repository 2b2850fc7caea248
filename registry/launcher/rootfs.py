"""Each app's root filesystem: an overlayfs over the store's shared tree, or a private copy.

The overlay is mounted by the stage1 inside the app's own mount namespace, so it disappears with
the app and no mount is ever left on the host. A pod prepared in copy mode needs no mount at all.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import linux


def overlay_supported_cached(work_parent: Path, cache: Path) -> bool:
    """`overlay_supported`, remembered per filesystem and kernel in `cache` (a probe costs a fork
    and a mount on every prepare otherwise)."""
    key = f"{os.stat(work_parent).st_dev}:{os.uname().release}"
    try:
        saved_key, _, answer = cache.read_text().strip().rpartition("=")
        if saved_key == key:
            return answer == "yes"
    except OSError:
        pass
    supported = overlay_supported(work_parent)
    temp = cache.with_name(f".{cache.name}.{os.getpid()}")
    temp.write_text(f"{key}={'yes' if supported else 'no'}\n")
    os.replace(temp, cache)
    return supported


def overlay_supported(work_parent: Path) -> bool:
    """Can overlayfs use directories on this filesystem as upper and work? Tried, not guessed."""
    try:
        if "overlay" not in Path("/proc/filesystems").read_text():
            return False
    except OSError:
        return False
    import tempfile  # here: the probe runs once per filesystem and kernel (see the cache above)

    probe = Path(tempfile.mkdtemp(prefix=".overlay-probe-", dir=work_parent))
    try:
        for sub in ("lower", "upper", "work", "merged"):
            (probe / sub).mkdir()
        pid = os.fork()
        if pid == 0:  # try in a throwaway mount namespace: nothing to unmount afterwards
            try:
                linux.unshare(linux.CLONE_NEWNS)
                linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
                mount_overlay(probe / "lower", probe / "upper", probe / "work", probe / "merged")
                os._exit(0)
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status) == 0
    finally:
        import shutil

        shutil.rmtree(probe, ignore_errors=True)


def mount_overlay(lower: Path, upper: Path, work: Path, target: Path) -> None:
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    linux.mount("overlay", str(target), "overlay", 0, options)


def resolve_in_root(root: Path, path: str, *, create_dirs: bool = False) -> Path:
    """`path` inside `root` with symlinks followed as if `root` were `/` (never leaving it).

    An image may hold a symlink such as `/data -> /etc`; a volume mounted at `/data` must land on
    `root/etc`, not on the host's `/etc`.
    """
    parts = [p for p in path.split("/") if p and p != "."]
    current = root
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current.parent if current != root else root
            continue
        candidate = current / part
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise OSError(f"too many symlinks resolving {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = root
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        if not candidate.exists() and create_dirs:
            candidate.mkdir(mode=0o755)
        current = candidate
    return current
