"""The systemd stage1: each pod is a machine booted by systemd-nspawn, with systemd inside.

Where systemd is PID 1 (the `machine` path), a pod is what systemd's own tools manage:

    machine.slice/pyrkt-<uuid>.scope        the pod's unit (`systemctl stop`, limits, Delegate=)
    ├── supervisor (python -m registry.launcher.stage1_systemd): holds the pod's lock, mounts
    │   the apps' roots (in a mount namespace of its own), forwards ports, records the end
    └── systemd-nspawn --boot --register=yes --keep-unit   machine pyrkt-<uuid>, class container
        └── systemd (the host's binaries: /usr bound read-only)
            ├── systemd-journald     writes <pod>/machine/var/log/journal/<machine-id>
            ├── <app>.service        one per app: RootDirectory= the app's rootfs, its exec,
            │                        environment, user, limits
            └── pyrkt-exit-<app>.service   bound to it: records its exit code when it stops,
                                     powers the machine off after the last app

Why systemd inside the pod (rkt's `host` flavour), and not the apps as units of the host or a
pod init of ours: `journalctl -M <machine>` reads the journal files *inside* the machine's root,
so only a journald in the machine makes it show the apps' lines, each attributed to its app
(its unit, its SyslogIdentifier); `machinectl poweroff` asks the machine's init for an orderly
shutdown, which only an init that stops services and reports how each ended can honour (the
codes come from systemd's record of each app's main process, so a signal is 128+N and not
"success");
`machinectl status` shows the processes of each app under its own unit. The host's binaries
are used so that the stage1 needs nothing the host does not have (rkt's coreos flavour shipped
its own systemd in a stage1 image). The cost is a boot of a minimal systemd (journald and the
apps' units only: no generators, no sysinit) per pod, measured by bench/bench_run.py.

The pod's unit is a scope made by `systemd-run --scope` from `pyrkt run`: the supervisor is a
child of `pyrkt run` and inherits the pod's locked directory descriptor (so the pod reads as
running with no moment unlocked), yet it lives in its own unit: stopping the unit that runs
`pyrkt run` leaves the pod running and managed (status, stop, enter, logs; gc keeps it).
`pyrkt run` itself follows the machine's journal (the apps' output, as they write it) and waits;
Ctrl-C stops the pod, SIGTERM or SIGHUP only detach from it.

Where systemd-nspawn exists but systemd is not PID 1 (the `child` path), `systemd-nspawn
--register=no --keep-unit --as-pid2` runs a one-app pod as our child inside cgroups the
launcher made itself (the `cgroups` module), its output captured to the app's log file like the
builtin flavour's.

Networks are stage0's (nspawn joins its namespace); ports that NAT cannot reach use the same
userspace forwarder as the builtin flavour.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from . import linux, machine
from .errors import LauncherError
from .limits import enforced, pod_limits, systemd_properties
from .logs import LogWriter
from .machine import INNER, machine_name, nspawn_args
from .network.dns import nspawn_binds
from .pods import Pod, PodLock, find_pod, record_pid, write_atomic
from .portfwd import Forwarder, bind_listeners, userspace_forwards
from .rootfs import mount_overlay
from .stage1_builtin import finish, make_cgroups

# Function-local imports keep start-up fast: the supervisor loads no journal reader, `pyrkt run`
# no network teardown.

SCOPE_SUFFIX = ".scope"
CGROUP_ROOT = Path("/sys/fs/cgroup")


def run(pod: Pod, lock: PodLock, *, as_unit: bool, echo: bool = True) -> int:
    """Run a pod under systemd-nspawn; `lock` (the pod's) is held by the caller.
    `as_unit`: systemd is PID 1, so the pod is a machine in a unit of its own."""
    manifest, runtime = pod.manifest(), pod.runtime()
    apps = manifest["apps"]
    if as_unit:
        return _run_machine(pod, lock, manifest, runtime, echo)
    if len(apps) != 1:
        raise LauncherError("without systemd as PID 1, the systemd stage1 runs pods of one app; "
                            "use --stage1=builtin for several apps")
    root = _prepare_root(pod, apps[0], runtime)
    try:
        code = _run_as_child(pod, manifest, runtime, root, echo)
    finally:
        if runtime["rootfs"] == "overlay":
            _unmount(root)
    return finish(pod, apps, code)


# -- the machine path (systemd is PID 1) --------------------------------------------------------

def unit_name(pod: Pod) -> str:
    return machine_name(pod) + SCOPE_SUFFIX


def _scope_properties(pod: Pod) -> list[str]:
    """The pod's unit: delegated (the machine's systemd manages its own cgroups below it), and
    limited to the sum of its apps' limits (`limits.pod_limits`); each app's own limits are in
    its unit inside the machine."""
    props = ["-p", "Delegate=yes"]
    for prop in systemd_properties(pod_limits(enforced(pod).values())):
        props += ["-p", prop]
    return props


class _Detach(Exception):
    """SIGTERM or SIGHUP to `pyrkt run`: leave the pod running in its own unit."""


def _run_machine(pod: Pod, lock: PodLock, manifest: dict[str, Any], runtime: dict[str, Any],
                 echo: bool) -> int:
    """The machine path; the pod's end is its supervisor's to record (`supervise`), ours only
    when no supervisor is left to do it (it never started, or died before it could)."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        return _follow_machine(pod, lock, manifest, runtime, echo, started)
    except BaseException:
        # (a supervisor still running, as after a detach, records it when the pod ends)
        if not (started and started[0].poll() is None) and not pod.end_recorded():
            pod.write_timestamp("finished")
        raise


def _follow_machine(pod: Pod, lock: PodLock, manifest: dict[str, Any], runtime: dict[str, Any],
                    echo: bool, started: list[subprocess.Popen[bytes]]) -> int:
    from . import journal

    machine.build(pod, manifest, runtime)  # a manifest systemd cannot take fails here
    write_atomic(Path(pod.path) / "unit", unit_name(pod) + "\n")
    command = ["systemd-run", "--quiet", "--scope", f"--unit={unit_name(pod)}",
               "--slice=machine", f"--description=pyrkt pod {pod.uuid}",
               *_scope_properties(pod), "--",
               sys.executable, "-m", "registry.launcher.stage1_systemd", str(pod.path),
               str(lock.fd)]
    # its own session: the terminal's Ctrl-C reaches us, and we decide what it means
    supervisor = subprocess.Popen(command, stdin=subprocess.DEVNULL, pass_fds=(lock.fd,),
                                  start_new_session=True)
    started.append(supervisor)
    asked: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        if signum == signal.SIGINT:  # Ctrl-C: stop the pod (a second one kills it)
            _signal(supervisor.pid, signal.SIGINT)
            asked.append(signum)
        else:
            raise _Detach()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM,
                                                         signal.SIGHUP)}
    names = [app["name"] for app in manifest["apps"]]
    try:
        if echo:
            ended = os.pidfd_open(supervisor.pid)
            try:
                for line in journal.follow(machine.journal_dir(pod), names,
                                           lambda: supervisor.poll() is None, ended_fd=ended):
                    _echo(line.data)
            finally:
                os.close(ended)
        status = supervisor.wait()
    except _Detach:
        sys.stderr.write(f"pyrkt: pod {pod.uuid} keeps running as {unit_name(pod)} "
                         f"(pyrkt stop {pod.uuid} ends it)\n")
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if (Path(pod.path) / START_ERROR).exists():
        raise LauncherError(f"cannot start pod {pod.uuid}: "
                            f"{(Path(pod.path) / START_ERROR).read_text().strip()}")
    if status != 0 and pod.pid() is None:  # systemd-run could not make the unit
        raise LauncherError(f"cannot start pod {pod.uuid}: systemd-run --scope exited with "
                            f"{status}")
    # the supervisor recorded the end; if it was killed, what it could not record is ours
    return finish(pod, manifest["apps"], 128 - status if status < 0 else status) \
        if pod.timestamp("finished") is None else _pod_code(pod, names)


def _pod_code(pod: Pod, names: list[str]) -> int:
    return next((c for c in (pod.exit_code(n) for n in names) if c), 0)


def _echo(data: bytes) -> None:
    try:
        os.write(1, data)
    except OSError:
        pass  # our reader is gone; the pod goes on (its output stays in the journal)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


START_ERROR = "start-error"  # why the supervisor could not start the machine (for `pyrkt run`)


def supervise(pod_dir: Path, lock_fd: int) -> int:
    """The pod unit's supervisor (see the module docstring); returns the pod's exit code."""
    from .network import pod as network

    pod = find_pod(pod_dir.parent.parent.parent, pod_dir.name)
    manifest, runtime = pod.manifest(), pod.runtime()
    apps = manifest["apps"]
    stopping: list[int] = []
    nspawn: subprocess.Popen[bytes] | None = None

    def stop(_signum: int, _frame: object) -> None:
        # nspawn asks the machine's systemd to shut down in order; a second request kills the
        # machine (its init: the kernel ends its PID namespace with it)
        leader = pod.pid()
        if stopping and leader:
            _signal(leader, signal.SIGKILL)
        elif nspawn is not None:
            _signal(nspawn.pid, signal.SIGTERM)
        stopping.append(1)

    # SIGINT is `pyrkt run`'s Ctrl-C, passed on. A SIGTERM reaches every process of the unit
    # at once (`systemctl stop`, `machinectl kill`): nspawn has its own, and one more from us
    # would be its "second SIGTERM", which kills the machine instead of shutting it down.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    forwarder = None
    try:
        forwards = bind_listeners(userspace_forwards(runtime))  # a busy port fails the start
        booted = machine.load(pod)
        _mount_roots(pod, apps, runtime, booted)
        _record_unit_cgroup(pod)
        back_to_unit = _leave_unit_root()
        # nspawn's and the booting systemd's own words go to a file of the pod, not the terminal
        with open(Path(pod.path) / "nspawn.log", "ab") as console:
            nspawn = subprocess.Popen(nspawn_args(pod, runtime, booted),
                                      stdin=subprocess.DEVNULL, stdout=console, stderr=console,
                                      preexec_fn=back_to_unit)
        leader = _wait_leader(pod, nspawn)
        record_pid(Path(pod.path) / "pid", leader)
        if forwards:
            forwarder = Forwarder(forwards, _machine_netns(pod, runtime, leader))
            forwarder.start()
    except (LauncherError, OSError) as error:
        write_atomic(Path(pod.path) / START_ERROR, f"{error}\n")
        if nspawn is not None and nspawn.poll() is None:
            nspawn.kill()
            nspawn.wait()
        nspawn = None
    status = 125
    while nspawn is not None:
        try:
            status = nspawn.wait()
            break
        except InterruptedError:
            continue
    if forwarder is not None:
        forwarder.close()
        os.close(forwarder.netns_fd)
    if nspawn is not None:
        code = finish(pod, apps, 128 - status if status < 0 else 128 + signal.SIGKILL)
    else:
        code = 125
        pod.write_timestamp("finished")
    try:
        network.teardown(Path(pod.path), pod.uuid)
    except LauncherError as error:
        sys.stderr.write(f"pyrkt: {error}; pyrkt gc will try again\n")
    # the unit's cgroup is systemd's to remove once we are gone (gc must not touch it)
    write_atomic(Path(pod.path) / "cgroups", "[]")
    os.close(lock_fd)
    return code


SUPERVISOR_LEAF = "pyrkt-supervisor"


def _leave_unit_root() -> Callable[[], None] | None:
    """cgroup v2: move us out of the root of the pod's (delegated) unit, into a leaf of ours,
    and return what puts nspawn back there before it execs.

    The apps' limits are their units' MemoryMax/CPUQuota inside the machine, which its systemd
    can only write if the memory and cpu controllers reach the machine's cgroup: nspawn
    (--keep-unit) moves itself and the machine into `supervisor` and `payload` below the unit
    and enables the controllers in the unit's subtree_control, which cgroup v2 refuses (EBUSY)
    while the unit's own directory still holds a process (us). Without this the apps' limits
    were silently not enforced (only the pod's ceiling was)."""
    if not (CGROUP_ROOT / "cgroup.controllers").exists():
        return None  # v1: nspawn delegates no controllers there (limits.plan refuses them)
    own = next((line.split(":", 2)[2] for line in
                Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::")),
               "/")
    if own in ("", "/"):
        return None
    unit = CGROUP_ROOT / own.lstrip("/")
    leaf = unit / SUPERVISOR_LEAF
    try:
        leaf.mkdir(exist_ok=True)
        (leaf / "cgroup.procs").write_text("0")
    except OSError:
        return None  # not ours to arrange (not delegated): nspawn does what it can

    def back() -> None:
        (unit / "cgroup.procs").write_text("0")

    return back


def _record_unit_cgroup(pod: Pod) -> None:
    """The pod unit's cgroup as the pod's own (`Pod.processes_alive`: a machine whose
    supervisor died is running while any process is left in its unit)."""
    found = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "" and (CGROUP_ROOT / "cgroup.controllers").exists():
            found.append(CGROUP_ROOT / path.lstrip("/"))
        elif controllers == "name=systemd":
            found.append(CGROUP_ROOT / "systemd" / path.lstrip("/"))
    write_atomic(Path(pod.path) / "cgroups", json.dumps([str(d) for d in found]))


def _machine_netns(pod: Pod, runtime: dict[str, Any], leader: int,
                   timeout: float = 30) -> int:
    """A descriptor of the machine's network namespace: stage0's, or the one nspawn makes for
    its init (which may join it a moment after it appears: we wait until it differs from
    ours)."""
    if (Path(pod.path) / "netns").exists():
        return os.open(Path(pod.path) / "netns", os.O_RDONLY | os.O_CLOEXEC)
    ours = os.stat("/proc/self/ns/net").st_ino
    deadline = time.monotonic() + timeout
    while runtime["net"] != "host" and os.stat(f"/proc/{leader}/ns/net").st_ino == ours:
        if time.monotonic() > deadline:
            raise LauncherError("the pod's machine got no network namespace of its own")
        time.sleep(0.01)
    return os.open(f"/proc/{leader}/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def _mount_roots(pod: Pod, apps: list[dict[str, Any]], runtime: dict[str, Any],
                 booted: machine.Machine) -> None:
    """The host's /usr (read-only) and the apps' roots, mounted where only this machine sees
    them: they go with it, however it ends (nothing is left on the host for gc to find)."""
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_SLAVE)
    for host in booted.host_dirs:
        target = str(booted.root / host.lstrip("/"))
        linux.mount(host, target, None, linux.MS_BIND | linux.MS_REC)
        linux.mount(None, target, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)
    for app in apps:
        app_dir = Path(pod.app_dir(app["name"]))
        root = app_dir / "rootfs"
        if runtime["rootfs"] == "overlay":
            lower = (app_dir / "lower").read_text().strip()
            mount_overlay(Path(lower), app_dir / "upper", app_dir / "work", root)
        else:
            linux.mount(str(root), str(root), None, linux.MS_BIND | linux.MS_REC)
        if app.get("readOnlyRootFS"):
            linux.mount(None, str(root), None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)


def _wait_leader(pod: Pod, nspawn: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """Host PID of the machine's init: nspawn's first descendant in another PID namespace
    (nspawn's own first child only forks it and exits)."""
    def children(pid: int) -> list[int]:
        try:
            return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []

    own = os.stat(f"/proc/{nspawn.pid}/ns/pid").st_ino
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if nspawn.poll() is not None:
            said = (Path(pod.path) / "nspawn.log").read_text(errors="replace").strip().splitlines()
            raise LauncherError(f"systemd-nspawn exited with {nspawn.returncode}"
                                f"{': ' + said[-1] if said else ''}")
        for pid in [c for child in children(nspawn.pid) for c in (child, *children(child))]:
            try:
                if os.stat(f"/proc/{pid}/ns/pid").st_ino != own:
                    return pid
            except OSError:
                continue
        time.sleep(0.01)
    raise LauncherError("systemd-nspawn did not start the pod's machine in time")


def app_pid(pod: Pod, app: str) -> int | None:
    """Host PID of a process of `app` (what `pyrkt enter` joins), if it runs: the machine's
    process whose root is the app's rootfs (as the machine mounted it)."""
    if not (Path(pod.path) / "unit").exists():
        return container_leader(pod)
    leader = pod.pid()
    if leader is None:
        return None
    try:
        wanted = os.stat(f"/proc/{leader}/root{INNER}/apps/{app}/rootfs")
    except OSError:
        return None
    found: list[int] = []
    todo = [leader]
    while todo:
        pid = todo.pop()
        try:
            root = os.stat(f"/proc/{pid}/root")
            todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            continue
        if (root.st_dev, root.st_ino) == (wanted.st_dev, wanted.st_ino):
            found.append(pid)
    return min(found) if found else None


# -- the child path (no systemd as PID 1) -------------------------------------------------------

def _nspawn_args(pod: Pod, manifest: dict[str, Any], runtime: dict[str, Any], root: Path,
                 *, register: bool) -> list[str]:
    app = manifest["apps"][0]
    section = app["app"]
    args = ["systemd-nspawn", "--quiet", "--as-pid2", f"--directory={root}",
            f"--machine={machine_name(pod)}", f"--hostname={runtime['hostname']}",
            f"--register={'yes' if register else 'no'}", "--keep-unit",
            "--kill-signal=SIGTERM"]
    if (Path(pod.path) / "netns").exists():  # stage0's namespace, wired with CNI
        args += [f"--network-namespace-path={Path(pod.path) / 'netns'}"]
    elif runtime["net"] != "host":
        args.append("--private-network")
    binds = nspawn_binds(Path(pod.path), app)  # the pod's /etc/hosts and resolv.conf
    if any(b.endswith(":/etc/resolv.conf") for b in binds):
        args.append("--resolv-conf=off")
    args += binds
    user = str(section.get("user", "0"))
    # nspawn's --user takes a name from the image's passwd file and its primary group; the
    # manifest's separate group is not applied by this flavour.
    if user not in ("0", "root"):
        args.append(f"--user={user}")
    if section.get("workingDirectory"):
        args.append(f"--chdir={section['workingDirectory']}")
    for entry in section.get("environment") or []:
        args.append(f"--setenv={entry['name']}={entry['value']}")
    volumes = {v["name"]: v for v in manifest.get("volumes") or []}
    for mount in app.get("mounts") or []:
        volume = volumes[mount["volume"]]
        source = volume["source"] if volume["kind"] == "host" else \
            str(Path(pod.path) / "volumes" / volume["name"])
        flag = "--bind-ro" if volume.get("readOnly") else "--bind"
        args.append(f"{flag}={source}:{mount['path']}")
    return args + ["--", *section["exec"]]


def _prepare_root(pod: Pod, app: dict[str, Any], runtime: dict[str, Any]) -> Path:
    app_dir = Path(pod.app_dir(app["name"]))
    root = app_dir / "rootfs"
    if runtime["rootfs"] == "overlay":
        # nspawn needs a directory: the overlay is mounted on the host for the pod's life
        # (gc and the end of the run unmount it).
        lower = (app_dir / "lower").read_text().strip()
        mount_overlay(Path(lower), app_dir / "upper", app_dir / "work", root)
    (root / "usr").mkdir(exist_ok=True)  # nspawn refuses a tree without /usr
    return root


def _unmount(root: Path) -> None:
    try:
        linux.umount(str(root), linux.MNT_DETACH)
    except OSError:
        pass


def _run_as_child(pod: Pod, manifest: dict[str, Any], runtime: dict[str, Any], root: Path,
                  echo: bool) -> int:
    app = manifest["apps"][0]
    groups = make_cgroups(pod, [app])[app["name"]]
    forwards = bind_listeners(userspace_forwards(runtime))
    log_path = Path(pod.app_dir(app["name"])) / "log"
    args = _nspawn_args(pod, manifest, runtime, root, register=False)
    log = LogWriter(log_path)
    try:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, preexec_fn=groups.join_self)
        write_atomic(Path(pod.path) / "pid", f"{process.pid}\n")
        forwarder = _start_forwarder(process.pid, forwards)
        assert process.stdout is not None
        # Popen's pipes are BufferedReaders (typeshed says IO[bytes]); read1 returns what is
        # there instead of waiting for 64 KiB.
        stdout = cast(io.BufferedReader, process.stdout)
        for chunk in iter(lambda: stdout.read1(65536), b""):
            log.write(chunk)
            if echo:
                os.write(1, chunk)
        status = process.wait()
    finally:
        log.close()
    if forwarder is not None:
        forwarder.close()
        os.close(forwarder.netns_fd)
    code = status if status >= 0 else 128 - status
    write_atomic(Path(pod.app_dir(app["name"])) / "exit", f"{code}\n")
    return code


def _start_forwarder(nspawn_pid: int, forwards: list[Any]) -> Forwarder | None:
    if not forwards:
        return None
    leader = _wait_child(nspawn_pid)
    forwarder = Forwarder(forwards, os.open(f"/proc/{leader}/ns/net", os.O_RDONLY | os.O_CLOEXEC))
    forwarder.start()
    return forwarder


def _wait_child(pid: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.02)
    raise LauncherError("systemd-nspawn did not start the pod in time")


def container_leader(pod: Pod) -> int | None:
    """Host PID of the container's first process, if it runs."""
    nspawn = pod.pid()
    if nspawn is None:
        return None
    try:
        return _wait_child(nspawn, timeout=2)
    except LauncherError:
        return None


def stop(pod: Pod, *, force: bool = False) -> None:
    """`pyrkt stop`: a machine is powered off as `machinectl poweroff` does (its systemd stops
    each app: SIGTERM, SIGKILL after 90 s), or killed at once with `force`."""
    if (Path(pod.path) / "unit").exists():
        leader = pod.pid()
        if leader is None:
            raise LauncherError(f"pod {pod.uuid} is starting; try again in a moment")
        _signal(leader, signal.SIGKILL if force else signal.SIGRTMIN + 4)
        return
    pid = pod.pid()
    if pid is None:
        raise LauncherError(f"pod {pod.uuid} is starting; try again in a moment")
    _signal(pid, signal.SIGKILL if force else signal.SIGTERM)


if __name__ == "__main__":  # the supervisor, started by systemd-run --scope (see run)
    sys.exit(supervise(Path(sys.argv[1]), int(sys.argv[2])))
