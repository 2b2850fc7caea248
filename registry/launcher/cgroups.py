"""The builtin stage1's cgroups, written directly: cgroup v2 when the host is unified, v1 otherwise.

Layout, in each hierarchy used (v2: the unified one; v1: memory, cpu, cpuacct and pids, wherever
they are mounted):

    <hierarchy>/pyrkt/<pod-uuid>/          the pod: its ceiling (`limits.pod_limits`)
    <hierarchy>/pyrkt/<pod-uuid>/<app>     one leaf per app: the app's own limits
    <hierarchy>/pyrkt/<pod-uuid>/_init     v2: the pod's own processes (holder and pod init)

Under v2 the pod's own processes live in a leaf of their own because of its "no internal
processes" rule: a cgroup that enables controllers for its children (`cgroup.subtree_control`,
needed for the apps' memory.max and cpu.max to exist) may not hold processes itself. (`_init` is
not an AC name, so no app can be called that.) v1 has no such rule, and there they stay in the
pod's directory itself (a leaf would cost every start four more cgroup mkdirs, ~0.15 ms, for
nothing). Every pod process is then at or below the pod's directory, which is what tells a
live pod from a dead one (`populated`; v1: a task at any level) whatever happened to the
`pyrkt run` that started it.

The directories are recorded in the pod (`cgroups`: the pod's; `apps/<app>/cgroups`: each
app's) so `pyrkt gc` removes exactly what was made, and they outlive the app until then so its
statistics (cpu.stat, memory.events, memory.max_usage_in_bytes...) can still be read.
"""

from __future__ import annotations

import os
import time

from registry.records import field, record

from .errors import LauncherError
from .limits import CGROUP_ROOT, INSECURE_OPTION, OPTIONAL_FILES, Limits, v1_files, v2_files
from .pods import read_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import TypeVar

    from _typeshed import StrPath

    P = TypeVar("P", bound=StrPath)

V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids")
V2_CONTROLLERS = ("cpu", "memory", "pids")
INIT_LEAF = "_init"


# Paths are plain strings (os.path: pathlib costs every start ~6 ms of imports); the directories
# given back to us (a pod's recorded ones) may be str or os.PathLike.


def _write_text(path: StrPath, text: str) -> None:
    # os-level: the holder's and each app's first file of all (join_self), where a text-mode
    # open costs a just-forked process ~0.2 ms more (its io objects' first use)
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _mkdir(path: str) -> None:
    """mkdir that accepts an existing directory (pathlib's mkdir(exist_ok=True))."""
    try:
        os.mkdir(path)
    except FileExistsError:
        if not os.path.isdir(path):
            raise


def _make_pod_dir(path: str) -> None:
    """`pyrkt/<uuid>`: one mkdir where `pyrkt/` is there already (every pod but a host's
    first), not makedirs' look at the parent first."""
    try:
        _mkdir(path)
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)


def is_unified() -> bool:
    return os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))


def v1_mountpoints() -> dict[str, str]:
    """controller -> mount point of its v1 hierarchy (from /proc/self/mounts)."""
    found: dict[str, str] = {}
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) < 4 or fields[2] != "cgroup":
                continue
            for option in fields[3].split(","):
                if option in V1_CONTROLLERS:
                    found.setdefault(option, fields[1].replace("\\040", " "))
    return found


@record
class AppCgroup:
    """The cgroup directories of one app, or of the pod's own processes (one per hierarchy)."""

    dirs: list[str] = field(default_factory=list)
    unified: bool = False

    def join_self(self) -> None:
        """Move the calling process in (done by the app itself before it execs; `0` = self).

        The caller is a fork, so it has one thread; v1's `tasks` moves just that thread, which
        then is the whole process. A thread moving itself spares the kernel the lock that holds
        every fork and exit on the host while a whole process moves (Linux's "cgroup: Optimize
        single thread migration"): through `cgroup.procs` the first move waits for an RCU grace
        period, 10-25 ms of every run. (v2 allows `cgroup.threads` only in threaded subtrees.)"""
        for directory in self.dirs:
            _write_text(os.path.join(directory, "cgroup.procs" if self.unified else "tasks"), "0")


@record
class PodCgroups:
    pod_dirs: list[str] = field(default_factory=list)  # pyrkt/<uuid> in each hierarchy
    apps: dict[str, AppCgroup] = field(default_factory=dict)
    init: AppCgroup = field(default_factory=AppCgroup)


def _write(path: str, value: str, what: str) -> None:
    try:
        _write_text(path, value)
    except FileNotFoundError:
        if os.path.basename(path) in OPTIONAL_FILES:
            return  # a kernel without swap accounting or oom groups: nothing to set
        raise LauncherError(f"{what} cannot be enforced: {path} does not exist (the "
                            f"controller is not enabled there)") from None
    except OSError as error:
        raise LauncherError(f"{what} cannot be enforced: writing {value.strip()} to {path} "
                            f"failed: {error.strerror or error} (--insecure-options="
                            f"{INSECURE_OPTION} runs the pod without it)") from None


def _enable_v2_controllers(pod_dir: str, needed: set[str]) -> None:
    """Enable the controllers in `subtree_control` of every level from the root down to the
    pod's own directory (inclusive: the apps' leaves are its children, and that is the level
    the limits live in). `needed` must be enabled; the others (statistics) are enabled if the
    host lets us."""
    available = set(read_text(os.path.join(CGROUP_ROOT, "cgroup.controllers")).split())
    wanted = [c for c in V2_CONTROLLERS if c in available]
    current = CGROUP_ROOT
    for part in (*os.path.relpath(pod_dir, CGROUP_ROOT).split(os.sep), None):
        control = os.path.join(current, "cgroup.subtree_control")
        enabled = set(read_text(control).split())
        for controller in (c for c in wanted if c not in enabled):
            try:
                _write_text(control, f"+{controller}")
            except OSError as error:
                if controller in needed:
                    raise LauncherError(
                        f"the cgroup v2 {controller} controller cannot be enabled in {current}: "
                        f"{error.strerror or error} (the host did not delegate it; "
                        f"--insecure-options={INSECURE_OPTION} runs the pod unlimited)") from None
        if part is None:
            break
        current = os.path.join(current, part)


def _needed(limits: list[Limits]) -> set[str]:
    needed = set()
    if any(lim.memory is not None for lim in limits):
        needed.add("memory")
    if any(lim.cpu_millis is not None for lim in limits):
        needed.add("cpu")
    return needed


def create_pod(pod_uuid: str, per_app: dict[str, Limits], ceiling: Limits) -> PodCgroups:
    """Make the pod's cgroups and write every limit; LauncherError if a limit can't be set.

    With no limit asked for, a host that refuses cgroups (a container given none) runs the pod
    without cgroups of its own: nothing is lost but statistics.
    """
    asked = [ceiling, *per_app.values()]
    try:
        made = _create_v2(pod_uuid, per_app, ceiling) if is_unified() else \
            _create_v1(pod_uuid, per_app, ceiling)
    except (OSError, LauncherError) as error:
        if not any(asked):
            return PodCgroups(apps={name: AppCgroup() for name in per_app})
        if isinstance(error, LauncherError):
            raise
        raise LauncherError(f"cannot create the pod's cgroups: {error.strerror or error} "
                            f"(--insecure-options={INSECURE_OPTION} runs the pod unlimited)"
                            ) from None
    return made


def _create_v2(pod_uuid: str, per_app: dict[str, Limits], ceiling: Limits) -> PodCgroups:
    pod_dir = os.path.join(CGROUP_ROOT, "pyrkt", pod_uuid)
    _make_pod_dir(pod_dir)
    made = PodCgroups([pod_dir])
    try:
        _enable_v2_controllers(pod_dir, _needed([ceiling, *per_app.values()]))
        for name, value in v2_files(ceiling):
            _write(os.path.join(pod_dir, name), value, "the pod's ceiling")
        for app, limits in {INIT_LEAF: Limits(), **per_app}.items():
            leaf = os.path.join(pod_dir, app)
            _mkdir(leaf)
            group = AppCgroup([leaf], unified=True)
            if app == INIT_LEAF:
                made.init = group
            else:
                made.apps[app] = group
            for name, value in v2_files(limits):
                _write(os.path.join(leaf, name), value, _what(app, name))
    except BaseException:
        remove(made.pod_dirs)
        raise
    return made


def _what(app: str, filename: str) -> str:
    flag = "--memory" if filename.startswith("memory") else "--cpu"
    return f"{flag} (app {app})"


def _create_v1(pod_uuid: str, per_app: dict[str, Limits], ceiling: Limits) -> PodCgroups:
    mounts = v1_mountpoints()
    for controller in sorted(_needed([ceiling, *per_app.values()])):
        if controller not in mounts:
            raise LauncherError(f"--{controller} cannot be enforced: no cgroup v1 hierarchy "
                                f"has the {controller} controller")
    made = PodCgroups()
    try:
        for mount in dict.fromkeys(mounts.values()):
            pod_dir = os.path.join(mount, "pyrkt", pod_uuid)
            _make_pod_dir(pod_dir)
            made.pod_dirs.append(pod_dir)
            made.init.dirs.append(pod_dir)  # (no leaf of its own: see the module's docstring)
            for app in per_app:
                _mkdir(os.path.join(pod_dir, app))
                made.apps.setdefault(app, AppCgroup()).dirs.append(os.path.join(pod_dir, app))
        for controller, name, value in v1_files(ceiling):
            _write(os.path.join(mounts[controller], "pyrkt", pod_uuid, name), value,
                   "the pod's ceiling")
        for app, limits in per_app.items():
            for controller, name, value in v1_files(limits):
                _write(os.path.join(mounts[controller], "pyrkt", pod_uuid, app, name), value,
                       _what(app, name))
    except BaseException:
        remove(made.pod_dirs)
        raise
    return made


def remove(dirs: Sequence[StrPath], *, attempts: int = 20) -> None:
    """Remove cgroup directories (their child cgroups first) and their now-empty `pyrkt/<uuid>`
    parents."""
    parents: set[str] = set()
    for given in dirs:
        directory = os.path.normpath(given)
        for child in _children(directory):
            _rmdir(child, attempts)
        _rmdir(directory, attempts)
        parents.add(os.path.dirname(directory))
    for parent in parents:
        if os.path.basename(parent) == "pyrkt":
            continue  # shared by every pod
        try:
            os.rmdir(parent)
        except OSError:
            pass


def _children(directory: str) -> list[str]:
    try:
        with os.scandir(directory) as entries:
            return [entry.path for entry in entries if entry.is_dir()]
    except OSError:
        return []


def _rmdir(directory: str, attempts: int) -> None:
    for _ in range(attempts):
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)  # the last task may still be exiting


def app_cgroup_dir(dirs: Sequence[P], controller: str) -> P | None:
    """The directory of `controller` among an app's recorded cgroup directories (one of
    `dirs`, as given)."""
    if is_unified():
        return dirs[0] if dirs else None
    mount = v1_mountpoints().get(controller)
    if mount is None:
        return None
    return next((d for d in dirs if _is_below(d, mount)), None)


def _is_below(path: StrPath, directory: str) -> bool:
    """`path` is `directory` or inside it, component by component (pathlib's is_relative_to)."""
    inside, directory = os.path.normpath(path), os.path.normpath(directory)
    return inside == directory or inside.startswith(directory.rstrip("/") + "/")


def pids_in(dirs: Sequence[StrPath]) -> set[int]:
    found: set[int] = set()
    for directory in dirs:
        try:
            found |= {int(p) for p in read_text(os.path.join(directory, "cgroup.procs")).split()}
        except OSError:
            pass
    return found


def memory_events(dirs: Sequence[StrPath]) -> dict[str, int]:
    """The memory controller's event counters of an app (v2 memory.events; v1: oom_kill from
    memory.oom_control), {} when there are none."""
    directory = app_cgroup_dir(dirs, "memory")
    if directory is None:
        return {}
    for name in ("memory.events", "memory.oom_control"):
        try:
            text = read_text(os.path.join(directory, name))
        except OSError:
            continue
        events = {}
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                events[key] = int(value)
        return events
    return {}
