"""What `list`, `status`, `stop`, `rm`, `gc`, `logs`, `enter` and `cat-manifest` do to pods."""

from __future__ import annotations

import fcntl
import os
import time

# records, not dataclasses: `pyrkt list` and `status` start without inspect and ast (~8 ms)
from registry.records import field, record, replace

from .errors import LauncherError
from .pods import Pod, PodLock, find_pod, list_pods, process_exiting, read_text, remove_tree

# typing, pathlib and signal (enum) stay out of `pyrkt list` and `status` (see pods)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable, Iterator
    from typing import Any

    from _typeshed import StrPath

    from .logs import LogLine
else:
    import _signal as signal  # signal's numbers without its IntEnum wrappers

_join = os.path.join

# Function-local imports keep start-up fast: a pod command loads only what it runs (`list` and
# `status` describe pods without the cgroups' machinery and the log readers).

ACTIVE_STATES = ("embryo", "preparing", "prepared", "running")


# -- describing ---------------------------------------------------------------------------------

@record
class AppInfo:
    name: str
    image_name: str
    image_id: str
    exit_code: int | None
    reason: str | None = None  # how it ended when the code alone does not say: oom-killed


@record
class PodInfo:
    uuid: str
    state: str
    created: float | None
    started: float | None
    finished: float | None
    pid: int | None
    apps: list[AppInfo]
    networks: list[str]  # rkt's `default:ip4=172.16.28.2`
    network_info: list[dict[str, Any]] = field(default_factory=list)  # netName, ifName, ip...

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.uuid, "state": self.state, "networks": self.network_info,
            "app_names": [a.name for a in self.apps],
            "apps": [{"name": a.name, "image_name": a.image_name, "image_id": a.image_id,
                      "exit_code": a.exit_code, **({"reason": a.reason} if a.reason else {})}
                     for a in self.apps],
            "created_at": _ns(self.created), "started_at": _ns(self.started),
            "finished_at": _ns(self.finished),
        }


def _ns(stamp: float | None) -> int | None:
    return None if stamp is None else int(stamp * 1e9)


def describe(pod: Pod) -> PodInfo:
    apps = []
    try:
        manifest = pod.manifest()
    except LauncherError:
        manifest = {}
    # a machine SIGKILLed with its supervisor (and no `pyrkt run` left) recorded nothing: its
    # apps died with it
    killed_machine = pod.state == "exited" and os.path.exists(_join(pod.path, "unit")) and \
        os.path.exists(_join(pod.path, "pid"))
    for app in manifest.get("apps", []):
        code = pod.exit_code(app["name"])
        if code is None and killed_machine:
            code = 128 + signal.SIGKILL
        apps.append(AppInfo(app["name"], app["image"].get("name", ""), app["image"]["id"],
                            code, end_reason(pod, app["name"], code)))
    # only the record of the networks: the network package's machinery (ctypes, CNI) stays out
    from .network import info as network

    shown = network.info(pod.path)
    return PodInfo(pod.uuid, pod.state, pod.timestamp("created"), pod.timestamp("started"),
                   pod.timestamp("finished"), pod.pid() if pod.is_running else None, apps,
                   [network.summary(entry) for entry in shown], shown)


def end_reason(pod: Pod, app: str, code: int | None) -> str | None:
    """How the app ended when its code alone does not say: "oom-killed" for an app killed by
    SIGKILL whose cgroup's memory events count an OOM kill (the kernel's word, from
    memory.events or v1's memory.oom_control), or what the stage1 recorded in
    `apps/<app>/reason` (a unit's cgroup is gone with the unit: systemd's $SERVICE_RESULT
    oom-kill is recorded there instead)."""
    try:
        recorded = read_text(_join(pod.app_dir(app), "reason")).strip()
    except OSError:
        recorded = ""
    if recorded:
        return recorded
    if code != 128 + signal.SIGKILL:
        return None
    from . import cgroups

    if cgroups.memory_events(pod.cgroup_dirs_of(app)).get("oom_kill", 0) > 0:
        return "oom-killed"
    return None


def format_time(stamp: float | None) -> str:
    """rkt's time, "2006-01-02 15:04:05.000 +0000 UTC": what datetime.fromtimestamp(stamp, UTC)
    shows to the millisecond (microseconds rounded half to even, then cut), without loading
    datetime for `pyrkt status`."""
    if stamp is None:
        return ""
    whole = int(stamp // 1)
    micros = round((stamp - whole) * 1_000_000)
    if micros == 1_000_000:
        whole, micros = whole + 1, 0
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(whole))}.{micros // 1000:03d} +0000 UTC"


def status_lines(pod: Pod) -> list[str]:
    """rkt's `status` output: key=value lines, one `app-NAME=CODE` per app once known."""
    info = describe(pod)
    lines = [f"state={info.state}"]
    for key, stamp in (("created", info.created), ("started", info.started),
                       ("finished", info.finished if not pod.is_running else None)):
        if stamp is not None:
            lines.append(f"{key}={format_time(stamp)}")
    if info.networks:
        lines.append("networks=" + ",".join(info.networks))
    lines.append(f"pid={info.pid if info.pid is not None else -1}")
    lines.append(f"exited={'true' if info.state in ('exited', 'exited-garbage') else 'false'}")
    for app in info.apps:
        if app.exit_code is not None:
            lines.append(f"app-{app.name}={app.exit_code}")
        if app.reason:
            lines.append(f"app-{app.name}-reason={app.reason}")
    return lines


def status_document(pod: Pod) -> dict[str, Any]:
    """`status --format=json`: rkt's pod fields (name, state, networks, apps...) plus pid and
    exited, each app with its state and, once known, its own exit code."""
    info = describe(pod)
    document = info.to_json()
    document["pid"] = info.pid if info.pid is not None else -1
    document["exited"] = info.state in ("exited", "exited-garbage")
    for app in document["apps"]:
        app["state"] = "exited" if app["exit_code"] is not None else (
            "running" if info.state == "running" else info.state)
    return document


def wait_for_exit(pod: Pod, timeout: float | None = None) -> Pod:
    """Block until the pod is no longer running (or preparing/prepared then running)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pod = pod.refresh()
        if pod.state in ("running", "preparing", "embryo"):
            if pod.state == "running" and pod.locked and deadline is None:
                _wait_lock(pod.path)
            else:  # also a pod alive without its lock (see pods): nothing to block on
                time.sleep(0.1)
        elif pod.state == "prepared":
            time.sleep(0.1)
        else:
            return pod
        if deadline is not None and time.monotonic() > deadline:
            raise LauncherError(f"pod {pod.uuid} is still {pod.state} after {timeout:g}s")


def _wait_lock(path: str | os.PathLike[str]) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # granted when the pod's last process lets go
    finally:
        os.close(fd)


# -- stopping -----------------------------------------------------------------------------------

# rkt's stage1 stops each app as a systemd service without a TimeoutStopSec of its own, so an
# app gets systemd's default 90 s between SIGTERM and SIGKILL; `pyrkt stop` keeps that default.
DEFAULT_STOP_GRACE = 90.0
KILL_WAIT = 10.0  # after SIGKILL only the kernel's own teardown is left to wait for


def signal_pod(pod: Pod, signum: int) -> None:
    """Send `signum` to every process of the pod: each app's whole cgroup, and the pod's init.

    The init is signalled too because a process outside any cgroup of ours (an app that runs
    without cgroups on a host that refused them) is still in the pod's PID namespace, and the
    init forwards a SIGTERM to every process there; a SIGKILL to the init ends them all at once
    (the kernel kills a PID namespace with its PID 1).
    """
    init = pod.live_pid()
    if signum == signal.SIGKILL and init:
        _kill(init, signum)
    from . import cgroups

    seen: set[int] = set()
    dirs = pod.cgroup_dirs()
    for _round in range(5):  # a process may fork while we signal: go again for its children
        fresh = cgroups.pids_in(dirs) - seen
        if not fresh:
            break
        # oldest first, as a rule a parent before its children: a shell whose child died first
        # could go on (`sleep 1000; echo done` printing and exiting 0) before its own signal came
        for pid in sorted(fresh):
            _kill(pid, signum)
        seen |= fresh
    if signum != signal.SIGKILL and init:
        _kill(init, signum)


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def wait_stopped(pod: Pod, timeout: float, interval: float = 0.01) -> bool:
    """True once the pod is no longer running: nobody holds its lock (its supervisor and its
    last process are gone) and no process of it is alive (see pods)."""
    try:
        fd = os.open(pod.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                if not replace(pod, _alive=None).processes_alive():
                    return True
            except BlockingIOError:
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
    finally:
        os.close(fd)


def stop(store_dir: StrPath, uuid: str, *, force: bool = False,
         grace: float = DEFAULT_STOP_GRACE, wait: bool = True) -> Pod:
    """rkt's stop: SIGTERM to every app's processes, SIGKILL after `grace` seconds (at once with
    `force`). With `wait`, returns once the pod has exited: its supervisor is gone too, so its
    forwarded ports are closed and its exit codes are written. An exited pod whose processes
    run on (`_lingers`) is stopped the same way."""
    pod = find_pod(store_dir, uuid)
    lingering = not pod.is_running and _lingers(pod)
    if not pod.is_running and not lingering:
        raise LauncherError(f"pod {pod.uuid} is {pod.state}, not running")
    stage1 = _stage1_of(pod)
    if stage1 == "systemd":
        from . import stage1_systemd

        stage1_systemd.stop(pod, force=force)
    else:
        if not lingering and pod.live_pid() is None and not pod.cgroup_dirs():
            raise LauncherError(f"pod {pod.uuid} is starting; try again in a moment")
        signal_pod(pod, signal.SIGKILL if force else signal.SIGTERM)
    if not wait:
        return pod
    if not force and not wait_stopped(pod, grace):
        signal_pod(pod, signal.SIGKILL)
    if not wait_stopped(pod, KILL_WAIT):
        raise LauncherError(f"pod {pod.uuid} is still running {KILL_WAIT:g}s after SIGKILL")
    pod = pod.refresh()
    _release_network(pod)
    return pod


def _lingers(pod: Pod, wait: float | None = None) -> bool:
    """Does an exited builtin pod run on? Its end was recorded while its init still runs (a
    stage1 that failed at its end), and that is still so once the stage1's last processes had
    their time to go (`wait`: LAST_PROCESSES_WAIT, as rm and gc give them). `stop` ends it, or
    it could be neither stopped (it is not running) nor removed (rm and gc take no live pod).
    An init already in its exit is on its way: a process of its namespace that nobody reaps
    may hold it there, and no signal would help (see process_exiting)."""
    if pod.state != "exited" or _stage1_of(pod) == "systemd":
        return False
    init = pod.live_pid()  # (read once: whether it is gone or exiting is process_exiting's)
    if init is None:
        return False
    deadline = time.monotonic() + (LAST_PROCESSES_WAIT if wait is None else wait)
    while replace(pod, _alive=None).processes_alive():
        if process_exiting(init):
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.01)
    return False


def _release_network(pod: Pod) -> None:
    """A pod whose `pyrkt run` is gone has nobody to DEL its networks: stop does it.

    Whoever is first (the pod's own `pyrkt run`, this stop, a gc) does the teardown; the others
    find it done.
    """
    # loaded on use, like every network import here (list/status/rm start-up stays small)
    from .network import pod as network

    network.teardown(pod.path, pod.uuid)


def _stage1_of(pod: Pod) -> str:
    """The flavour that ran the pod ("" before it ran)."""
    try:
        return read_text(_join(pod.path, "stage1")).strip()
    except OSError:
        return ""


# -- removing -----------------------------------------------------------------------------------

def _unmount_under(path: StrPath) -> None:
    """Detach any mount left below a pod directory (none should be: they live in the pod)."""
    prefix = os.path.realpath(path) + "/"
    try:
        lines = read_text("/proc/self/mountinfo").splitlines()
    except OSError:
        return
    targets = [line.split()[4] for line in lines if line.split()[4].startswith(prefix)]
    from . import linux

    for target in sorted(targets, key=len, reverse=True):
        try:
            linux.umount(target, linux.MNT_DETACH)
        except OSError:
            pass


# A pod whose end is recorded may still be locked, and its cgroups populated, by the stage1's
# own last processes on their way out (see pods): rm and gc wait for them this long at most.
LAST_PROCESSES_WAIT = 5.0


def _settle(pod: Pod, lock: PodLock) -> str | None:
    """None once we hold the pod's `lock` exclusively and no process of the pod is left; else
    what stands in the way: "locked" (someone holds it) or "alive" (a process of it runs).
    For a pod whose end is recorded, both are its stage1's last processes on their way out:
    we wait for them, LAST_PROCESSES_WAIT at most."""
    ended: bool | None = None  # (read only when it decides)
    if not lock.try_exclusive():
        if not (pod.end_recorded() and lock.exclusive_within(LAST_PROCESSES_WAIT)):
            return "locked"
        ended = True
    deadline: float | None = None
    # (an exiting process lets go of the lock a moment before it leaves its cgroup)
    while replace(pod, _alive=None).processes_alive():
        if ended is None:
            ended = pod.end_recorded()
        if not ended:
            return "alive"
        if deadline is None:
            deadline = time.monotonic() + LAST_PROCESSES_WAIT
        elif time.monotonic() >= deadline:
            return "alive"
        time.sleep(0.002)
    return None


def destroy(pod: Pod) -> None:
    """Remove a pod that is not running: mounts, cgroups, then the directory."""
    lock = PodLock(pod.path)
    try:
        hindrance = _settle(pod, lock)
        # (_settle gave the last processes their time already)
        if hindrance == "locked" and not _lingers(pod, wait=0):
            raise LauncherError(f"pod {pod.uuid} is in use (state {pod.refresh().state})")
        if hindrance is not None:
            # it runs, its lock let go (a killed launcher, a pod systemd runs) or held past its
            # recorded end (`stop` ends such a pod): the directory and the overlay are its root
            raise LauncherError(f"pod {pod.uuid} still has live processes; stop it first "
                                f"(pyrkt stop {pod.uuid})")
        # loaded on use (see describe)
        from .network import pod as network

        network.teardown(pod.path, pod.uuid)  # CNI DEL first: it needs the pod's namespace
        _unmount_under(pod.path)
        from . import cgroups

        cgroups.remove(pod.cgroup_dirs() + pod.pod_cgroup_dirs())
        remove_tree(pod.path)
    finally:
        lock.close()


def rm(store_dir: StrPath, uuid: str) -> Pod:
    pod = find_pod(store_dir, uuid)
    if pod.state in ("running", "preparing", "embryo"):
        raise LauncherError(f"pod {pod.uuid} is {pod.state}; stop it first (pyrkt stop)")
    destroy(pod)
    return pod


def gc(store_dir: StrPath, *, grace_period: float = 1800.0, expire_prepared: float = 86400.0,
       mark_only: bool = False, now: float | None = None,
       log: Callable[[str], None] = lambda message: None) -> list[str]:
    """rkt's gc: mark exited and stale pods as garbage, delete garbage older than the grace period.

    Never touches a running pod. Returns the UUIDs deleted.
    """
    moment = time.time() if now is None else now
    for pod in list_pods(store_dir):
        state = pod.state
        if state == "exited":
            _mark(pod, "exited-garbage", log, "exited")
        elif state == "aborted-prepare":
            _mark(pod, "garbage", log, "aborted while preparing")
        elif state == "prepared" and moment - (pod.timestamp("created") or moment) > expire_prepared:
            _mark(pod, "garbage", log, "prepared and never run")
    removed: list[str] = []
    if mark_only:
        return removed
    for pod in list_pods(store_dir):
        if pod.state not in ("exited-garbage", "garbage"):
            continue
        marked = pod.timestamp("marked") or moment
        if pod.state == "exited-garbage" and max(0.0, moment - marked) < grace_period:
            continue
        try:
            destroy(pod)
        except LauncherError as error:
            log(f"skipping {pod.uuid}: {error}")
            continue
        log(f"Garbage collecting pod {pod.uuid}")
        removed.append(pod.uuid)
    return removed


def _mark(pod: Pod, target: str, log: Callable[[str], None], why: str) -> None:
    lock = PodLock(pod.path)
    try:
        # (a pod being started, or alive without its lock: not garbage; an exited pod's
        # stage1 still exiting: waited for)
        if _settle(pod, lock) is not None:
            return
        fresh = pod.refresh()
        if fresh.state_dir != pod.state_dir:
            return
        pod.move(target)
        pod.write_timestamp("marked")
        log(f"Moving pod {pod.uuid} to garbage ({why})")
    except (OSError, LauncherError):
        return
    finally:
        lock.close()


# -- reading ------------------------------------------------------------------------------------

def log_path(pod: Pod, app: str) -> str:
    if app not in pod.app_names():
        raise LauncherError(f"pod {pod.uuid} has no app named {app} (apps: "
                            f"{', '.join(pod.app_names())})")
    return _join(pod.app_dir(app), "log")


def read_logs(store_dir: StrPath, uuid: str, app: str | None, *, follow: bool = False,
              since: float | None = None, tail: int | None = None) -> Iterator[LogLine]:
    """The lines of the pod's apps (or of one app) in time order; live with `follow`."""
    from . import logs
    pod = find_pod(store_dir, uuid)
    names = [app] if app else pod.app_names()
    paths = {name: log_path(pod, name) for name in names}
    started = pod.timestamp("started") or pod.timestamp("created") or 0.0
    if os.path.isdir(_join(pod.path, "machine")):
        # the systemd stage1's machine: the apps' output is in its journal (see `journal`)
        from . import journal
        from .machine import journal_dir

        if not follow:
            lines, _ = journal.read(journal_dir(pod), names)
            yield from logs.select(lines, since=since, tail=tail)
            return
        yield from journal.follow(journal_dir(pod), names,
                                  lambda: find_pod(store_dir, pod.uuid).state in ACTIVE_STATES,
                                  since=since, tail=tail)
        return
    app_logs = [logs.AppLog(name, path, started) for name, path in paths.items()]
    if not follow:
        lines = logs.merge([log.read(final=True) for log in app_logs])
        yield from logs.select(lines, since=since, tail=tail)
        return

    def running() -> bool:
        return find_pod(store_dir, pod.uuid).state in ACTIVE_STATES

    yield from logs.follow(app_logs, running, since=since, tail=tail)


@record
class EnterTarget:
    pod: Pod
    app: dict[str, Any]  # the app's entry in the pod manifest
    pid: int  # host PID of a process of the app (its namespaces and root are entered)
    command: list[str]


def enter_target(store_dir: StrPath, uuid: str, app: str | None, command: list[str]) -> EnterTarget:
    """What `pyrkt enter` joins: the app, one of its processes, and the command to run."""
    pod = find_pod(store_dir, uuid)
    if not pod.is_running:
        raise LauncherError(f"pod {pod.uuid} is {pod.state}, not running")
    names = pod.app_names()
    if app is None:
        if len(names) != 1:
            raise LauncherError(f"pod {pod.uuid} has several apps; choose one with --app "
                                f"({', '.join(names)})")
        app = names[0]
    try:
        pid: int | None = int(read_text(_join(os.path.dirname(log_path(pod, app)), "pid")))
    except (OSError, ValueError):
        pid = None
    if pid is None and _stage1_of(pod) == "systemd":
        from .stage1_systemd import app_pid

        pid = app_pid(pod, app)
    if pid is None:
        raise LauncherError(f"app {app} of pod {pod.uuid} is not running")
    if not command:
        if not _has_program(pid, "/bin/sh"):
            raise LauncherError(_no_shell_message(pod, uuid, app, len(names) > 1))
        command = ["/bin/sh"]
    entry = next(a for a in pod.manifest()["apps"] if a["name"] == app)
    return EnterTarget(pod, entry, pid, command)


def _has_program(pid: int, path: str) -> bool:
    """Does the root filesystem of process `pid` hold `path`? (True when we cannot tell.)"""
    from .rootfs import resolve_in_root

    try:
        return os.path.isfile(resolve_in_root(f"/proc/{pid}/root", path))
    except OSError:
        return True  # let nsenter try and say what went wrong


def _no_shell_message(pod: Pod, given_uuid: str, app: str, several: bool) -> str:
    example = "/path/to/program"
    try:
        for entry in pod.manifest().get("apps", []):
            if entry.get("name") == app and entry.get("app", {}).get("exec"):
                example = str(entry["app"]["exec"][0])
    except (LauncherError, ValueError, AttributeError):
        pass
    app_flag = f"--app={app} " if several else ""
    return (f"app {app} has no /bin/sh to start; give the command to run, e.g. "
            f"pyrkt enter {app_flag}{given_uuid} {example}")


def images_in_use(store_dir: StrPath) -> set[str]:
    """IDs of images used by pods that are being prepared, prepared or running.

    `pyrkt image gc` keeps these (the client adds their dependencies).
    """
    used: set[str] = set()
    for pod in list_pods(store_dir):
        if pod.state not in ACTIVE_STATES:
            continue
        try:
            used.update(app["image"]["id"] for app in pod.manifest().get("apps", []))
        except (LauncherError, ValueError, KeyError):
            continue
    return used
