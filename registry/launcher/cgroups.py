"""Per-app cgroups written directly: cgroup v2 when the host is unified, v1 otherwise.

Layout: `<hierarchy>/pyrkt/<pod-uuid>/<app>` in each hierarchy used (v2: the unified one; v1:
memory, cpu and cpuacct, wherever they are mounted). The directories are recorded in the pod
(`apps/<app>/cgroups`) so `pyrkt gc` removes exactly what was made, and they outlive the app
until then so its statistics (cpu.stat, memory.max_usage_in_bytes...) can still be read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LauncherError

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids")


def is_unified() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def v1_mountpoints() -> dict[str, Path]:
    """controller -> mount point of its v1 hierarchy (from /proc/self/mounts)."""
    found: dict[str, Path] = {}
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) < 4 or fields[2] != "cgroup":
                continue
            for option in fields[3].split(","):
                if option in V1_CONTROLLERS:
                    found.setdefault(option, Path(fields[1].replace("\\040", " ")))
    return found


@dataclass
class AppCgroup:
    """The cgroup directories of one app (one per hierarchy)."""

    dirs: list[Path] = field(default_factory=list)
    unified: bool = False

    def join_self(self) -> None:
        """Move the calling process in (done by the app itself before it execs; `0` = self)."""
        for directory in self.dirs:
            (directory / "cgroup.procs").write_text("0")


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as error:
        raise LauncherError(f"cannot set {path.name}={value.strip()} in {path.parent}: "
                            f"{error.strerror or error}") from None


def _enable_v2_controllers(leaf: Path) -> None:
    """Turn on cpu and memory for every level between the root and the app's cgroup."""
    available = set((CGROUP_ROOT / "cgroup.controllers").read_text().split())
    wanted = [c for c in ("cpu", "memory", "pids") if c in available]
    current = CGROUP_ROOT
    for part in leaf.relative_to(CGROUP_ROOT).parts[:-1]:
        enabled = set((current / "cgroup.subtree_control").read_text().split())
        missing = [c for c in wanted if c not in enabled]
        if missing:
            _write(current / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
        current = current / part


def create(pod_uuid: str, app: str, *, memory: int | None, cpu_millis: int | None) -> AppCgroup:
    """Make the app's cgroups and write its limits; raises LauncherError if limits can't apply."""
    relative = Path("pyrkt") / pod_uuid / app
    try:
        if is_unified():
            leaf = CGROUP_ROOT / relative
            leaf.mkdir(parents=True, exist_ok=True)
            _enable_v2_controllers(leaf)
            group = AppCgroup([leaf], unified=True)
            if memory is not None:
                _write(leaf / "memory.max", str(memory))
                if (leaf / "memory.swap.max").exists():
                    _write(leaf / "memory.swap.max", "0")
            if cpu_millis is not None:
                _write(leaf / "cpu.max", f"{cpu_millis * CPU_PERIOD_US // 1000} {CPU_PERIOD_US}")
            return group
        mounts = v1_mountpoints()
        group = AppCgroup()
        for mount in dict.fromkeys(mounts.values()):
            directory = mount / relative
            directory.mkdir(parents=True, exist_ok=True)
            group.dirs.append(directory)
    except OSError as error:
        if memory is None and cpu_millis is None:
            return AppCgroup()  # no limits asked: run without cgroups of our own
        raise LauncherError(f"cannot create cgroups for app {app}: {error.strerror or error}"
                            ) from None
    if memory is not None:
        if "memory" not in mounts:
            raise LauncherError("--memory: no memory cgroup controller on this host")
        directory = mounts["memory"] / relative
        _write(directory / "memory.limit_in_bytes", str(memory))
        if (directory / "memory.memsw.limit_in_bytes").exists():  # no escape into swap
            _write(directory / "memory.memsw.limit_in_bytes", str(memory))
    if cpu_millis is not None:
        if "cpu" not in mounts:
            raise LauncherError("--cpu: no cpu cgroup controller on this host")
        directory = mounts["cpu"] / relative
        _write(directory / "cpu.cfs_period_us", str(CPU_PERIOD_US))
        _write(directory / "cpu.cfs_quota_us", str(cpu_millis * CPU_PERIOD_US // 1000))
    return group


def remove(dirs: list[Path], *, attempts: int = 20) -> None:
    """Remove cgroup directories and their now-empty `pyrkt/<uuid>` parents."""
    parents: set[Path] = set()
    for directory in dirs:
        for _ in range(attempts):
            try:
                directory.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)  # the last task may still be exiting
        parents.add(directory.parent)
    for parent in parents:
        try:
            parent.rmdir()
        except OSError:
            pass


def app_cgroup_dir(dirs: list[Path], controller: str) -> Path | None:
    """The directory of `controller` among an app's recorded cgroup directories."""
    if is_unified():
        return dirs[0] if dirs else None
    mount = v1_mountpoints().get(controller)
    if mount is None:
        return None
    return next((d for d in dirs if d.is_relative_to(mount)), None)


def pids_in(dirs: list[Path]) -> set[int]:
    found: set[int] = set()
    for directory in dirs:
        try:
            found |= {int(p) for p in (directory / "cgroup.procs").read_text().split()}
        except OSError:
            pass
    return found
