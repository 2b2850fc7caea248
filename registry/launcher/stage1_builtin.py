"""The builtin stage1: runs a prepared pod with nothing but the kernel (no systemd needed).

Process tree, from the host's point of view:

    pyrkt run (supervisor: holds the pod lock, forwards signals and ports, tears down networks)
    └── holder: joins the pod's `_init` cgroup, unshares the UTS, IPC, network and PID
        │       namespaces, sets the hostname, brings up loopback; pumps the apps' output into
        │       their logs (and onto our stdout), waits for the pod's init, records the end
        └── pod init (PID 1 of the pod): the pod's (private) mount namespace; forks the apps,
            │   reaps every process, writes each app's exit code, forwards SIGTERM/SIGINT and
            │   escalates to SIGKILL after a grace
            └── app: own mount namespace, cgroups joined, pivot_root, user/group, exec

All namespaces are made with unshare(2) through ctypes (see `linux`).

The pod's life does not hang on `pyrkt run`: the holder and the init hold the pod lock too (an
inherited descriptor) and live in the pod's cgroup, not in the launcher's (so a service manager
stopping the unit that ran `pyrkt run` signals `pyrkt run`, which stops the pod in order, rather
than killing the pod's init under its apps). If `pyrkt run` is killed outright, the pod runs on:
the holder keeps its logs and records its end, and the pod reads as `running` (lock, cgroup,
recorded init) for `status`, `stop`, `enter`, `logs` and `gc` until its last process is gone.

The end, in order (each step waits for the one before):

    the apps exit          their pipes reach EOF at the holder, which has pumped every byte
    the init's wait()      ECHILD: no child left; it sends the holder the apps' codes, through
                           a pipe (`_END`), kills whatever else is in the namespace (a
                           process `pyrkt enter` put there) and exits
    the holder             with both (the pipes' EOF, the init's codes) records the end
                           (`finish`: the apps' exit files, the `finished` stamp) and sends
                           `pyrkt run` the pod's code on the `ready` pipe; then it waits for
                           the init and exits
    `pyrkt run`            returns that code: at once (`reap=False`, the lean `pyrkt run`,
                           about to exit itself), or after waiting for the holder (`reap`)

so `pyrkt run` does not wait for the exits of the init and the holder (the kernel's teardown of
two processes, ~1 ms) and re-reads nothing. The pod is exited from the moment its end is
recorded (see pods: `rm`/`gc` wait for its last two processes). An init that dies without its
message (killed) or a holder that dies without its own leaves the end to be recorded as before
they had one: by the holder from the init's wait status, by `pyrkt run` from the holder's.
"""

from __future__ import annotations

import os
import select
import sys

from registry import jsontext

from . import cgroups, limits, linux, podinit
from .errors import LauncherError
from .logs import LogWriter
from .network.pod import join_netns
from .pods import PendingWrite, Pod, read_text, record_pid, timestamp_text, write_atomic
from .sandbox import become_app, filter_for
from .seccomp import cache_dir as seccomp_cache

TYPE_CHECKING = False  # typing, pathlib and json stay out of the start (see pods)
if TYPE_CHECKING:
    import signal
    import socket
    from collections.abc import Callable
    from typing import Any

    from .portfwd import Forward
else:
    # signal's own functions and numbers, without the module's IntEnum wrappers: `enum` costs
    # every start ~1.5 ms, and plain numbers are all a stage1 needs
    import _signal as signal

# Function-local imports keep start-up fast: sockets (port forwards, --interactive's terminal)
# load only for the pods that use them, before any fork (an app in its own root could not load
# a module any more).

# The pod init's own escalation (a SIGTERM from `pyrkt run`'s Ctrl-C, or from outside): the
# same 90 s as `pyrkt stop`'s default grace (see manage.DEFAULT_STOP_GRACE).
STOP_GRACE_SECONDS = 90
FORWARDED_SIGNALS = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)

# The last line of the init's message to the holder (after one `NAME CODE` line per app), and
# the word the holder's message to `pyrkt run` starts with (`exit CODE`): a message without it
# was cut short by a death, and the end is then told by wait statuses, as for a killed process.
_END = b"end\n"
_EXIT = "exit "



_join = os.path.join


def _pid_recorder(app_dir: str) -> Callable[[int], None]:
    """How an app's process records its host PID (functools.partial, without functools)."""
    def record(host_pid: int) -> None:
        write_atomic(_join(app_dir, "pid"), f"{host_pid}\n")

    return record

def exit_code_of(status: int) -> int:
    """Shell convention: the exit code, or 128+N for a process killed by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def app_filters(pod: Pod, apps: list[dict[str, Any]],
                runtime: dict[str, Any]) -> dict[str, bytes | None]:
    """Each app's seccomp program, compiled (or found in the store's cache) before any fork."""
    insecure = set(runtime.get("insecure") or ())
    cache = seccomp_cache(pod.store_dir)
    return {app["name"]: filter_for(app["app"], insecure, cache) for app in apps}


def make_pod_cgroups(pod: Pod) -> cgroups.PodCgroups:
    """The pod's cgroups with the limits `limits.plan` kept, recorded in the pod (see
    `cgroups`); LauncherError, before any process starts, if one cannot be set."""
    per_app = limits.enforced(pod)
    made = cgroups.create_pod(pod.uuid, per_app, limits.pod_limits(per_app.values()))
    try:
        write_atomic(_join(pod.path, "cgroups"), jsontext.dumps([str(d) for d in made.pod_dirs]))
        for name, group in made.apps.items():
            write_atomic(_join(pod.app_dir(name), "cgroups"),
                         jsontext.dumps([str(d) for d in group.dirs]))
    except BaseException:
        cgroups.remove(made.pod_dirs)
        raise
    return made


def make_cgroups(pod: Pod, apps: list[dict[str, Any]]) -> dict[str, cgroups.AppCgroup]:
    """Each app's cgroup (for a stage1 that runs the apps itself)."""
    made = make_pod_cgroups(pod).apps
    return {app["name"]: made[app["name"]] for app in apps}


def _pump_logs(pod: Pod, reads: dict[str, int], echo: bool) -> None:
    """Copy the apps' output to their log files (with the time of each chunk, see `logs`) and,
    when asked, to our stdout, until every app's pipe is at its end.

    One thread, one poll loop: the holder that runs this has unshared its PID namespace, and
    the kernel refuses a thread to such a process (clone(CLONE_THREAD) is EINVAL there).
    """
    poller = select.poll()  # (not selectors: its import costs every run ~1 ms)
    writers: dict[int, LogWriter] = {}
    for name, fd in reads.items():
        writers[fd] = LogWriter(_join(pod.app_dir(name), "log"))
        poller.register(fd, select.POLLIN)

    def done(fd: int) -> None:
        poller.unregister(fd)
        writers.pop(fd).close()
        os.close(fd)

    while writers:
        for fd, _events in poller.poll():
            if fd not in writers:
                continue  # ended by an earlier entry of this batch
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                done(fd)
                continue
            writers[fd].write(data)
            if not echo:
                continue
            try:
                os.write(1, data)
            except BrokenPipeError:
                # Whoever read our output is gone (`pyrkt run IMAGE | head -1`): stop reading
                # this app, so its next write ends it with SIGPIPE, as it would end in a shell
                # pipeline (it would otherwise write, unread, forever).
                done(fd)
            except OSError:
                echo = False  # our stdout failed otherwise; keep logging


def _pod_init(pod: Pod, manifest: dict[str, Any], runtime: dict[str, Any],
              groups: dict[str, cgroups.AppCgroup], pipes: dict[str, tuple[int, int]],
              programs: dict[str, bytes | None], terminal: socket.socket | None,
              ended_w: int) -> None:
    """PID 1 of the pod: hides the host (see `podinit`), starts the apps, reaps every process,
    records each app's exit code, forwards SIGTERM/SIGINT to the whole pod, tells the holder
    the codes on `ended_w` (see the module's text). Never returns."""
    try:
        # The pod's first mount namespace, the init's alone (the holder stays in the host's: it
        # mounts nothing, and its exit then has no namespace to tear down), private so that
        # nothing mounted in the pod reaches the host. The apps' copies are made from it.
        linux.unshare(linux.CLONE_NEWNS)
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        record_pid(_join(pod.path, "pid"), int(os.readlink("/proc/self")))
        for read_end, _ in pipes.values():  # the holder's: it pumps the logs
            os.close(read_end)
        apps_fd = os.open(_join(pod.path, "apps"), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        podinit.hide_host()
        _install_init_signals()
        # the apps wait for the host's tree to leave this namespace before their programs run:
        # else an app with CAP_SYS_PTRACE reads the host's / through /proc/1/root meanwhile
        dropped_r, dropped_w = os.pipe()
        children, held = _start_apps(pod, manifest, runtime, groups, pipes, programs, terminal,
                                     dropped_r, dropped_w)
        os.close(dropped_r)
        podinit.enter_empty_root(_init_root(pod))
        os.close(dropped_w)  # the apps waiting for it go on
        codes = _reap(children, apps_fd, held)
        # our stdio is `pyrkt run`'s: a reader of its output (`$(pyrkt run ...)`, a pipe) has
        # its end once the command has returned, not after our exit
        os.closerange(0, 3)
        _tell(ended_w, "".join(f"{name} {code}\n" for name, code in codes.items()).encode()
              + _END)
        # whatever else is in our namespace (`pyrkt enter`'s processes: not our children)
        # ends now, as our exit would end it (after the word: the holder need not wait for it)
        _kill_all(signal.SIGKILL)
        os._exit(0)
    except BaseException as error:  # noqa: BLE001
        os.write(2, f"pyrkt: pod init failed: {error}\n".encode())
        os._exit(125)


def _init_root(pod: Pod) -> str:
    return _join(pod.path, "init")


def _install_init_signals() -> None:
    def stop(_signum: int, _frame: object) -> None:
        # kill(-1) from the PID 1 of a namespace reaches every other process in it: the
        # apps' children and orphans too, not only the processes we forked.
        _kill_all(signal.SIGTERM)
        signal.alarm(STOP_GRACE_SECONDS)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGALRM, lambda _signum, _frame: _kill_all(signal.SIGKILL))
    # Signals apps use for "reload", "reopen logs", "dump state": passed on to every process
    # of the pod as they came (`kill -HUP $(cat <pod>/pid)` reaches the apps, as with rkt's
    # systemd, which relays them to its services).
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, lambda forwarded, _frame: _kill_all(forwarded))


def _start_apps(pod: Pod, manifest: dict[str, Any], runtime: dict[str, Any],
                groups: dict[str, cgroups.AppCgroup], pipes: dict[str, tuple[int, int]],
                programs: dict[str, bytes | None],
                terminal: socket.socket | None, dropped_r: int,
                dropped_w: int) -> tuple[dict[int, str], dict[int, int]]:
    """Fork every app; returns once each has a mount namespace of its own (so the init may
    then drop the host's tree from the one it keeps), with the apps by PID and the mount
    namespaces held for them (see `_hold_mount_namespaces`). Each app waits for the end of
    `dropped_r` (the init closes `dropped_w` once the host's tree is gone) before it runs."""
    children: dict[int, str] = {}
    unshared_r, unshared_w = os.pipe()
    for app in manifest["apps"]:
        name = app["name"]
        pid = os.fork()
        if pid == 0:
            os.close(unshared_r)
            os.close(dropped_w)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, *FORWARDED_SIGNALS):
                signal.signal(signum, signal.SIG_DFL)
            _wire_stdio(name, pipes, runtime.get("interactive", False))
            become_app(pod.path, manifest, app, runtime, groups[name],
                       _pid_recorder(pod.app_dir(name)),
                       lambda: os.close(unshared_w), programs[name], terminal,
                       lambda: podinit.wait_for_eof(dropped_r))
        children[pid] = name
    os.close(unshared_w)
    if terminal is not None:
        terminal.close()  # the app holds it now: its end tells the supervisor it failed
    for _, write_end in pipes.values():
        os.close(write_end)
    podinit.wait_for_eof(unshared_r)
    return children, _hold_mount_namespaces(children)


def _hold_mount_namespaces(children: dict[int, str]) -> dict[int, int]:
    """A descriptor of each app's mount namespace, kept by the init until it exits.

    The last reference to a mount namespace tears all its mounts down, in the exit of the
    process that drops it and before its parent can wait() for it: an app's copy of the host's
    tree and its own mounts cost the app's exit ~1 ms, and our wait() with it, so the pod's end
    (the holder's `finish`, `pyrkt run`'s return) came that much later. With these the app's
    exit only drops a reference; the teardown happens in our own exit, after we have told the
    holder the codes. (Another app of the pod sees nothing new through them: it shares the
    PID namespace, and the apps' roots are /proc/PID/root to it already.) An app that ends
    while others run has its descriptor closed when it is reaped (`_reap`).

    Returns {app's PID here: descriptor}. Our /proc is the host's (our namespace's PIDs are
    not its), so the apps are found as our children there, and, when there are several, told
    apart by the last PID of their NSpid line."""
    held: dict[int, int] = {}
    try:
        hosts = read_text("/proc/thread-self/children").split()
    except OSError:
        return held
    for host_pid in hosts:
        try:
            if len(children) == 1:
                pid = next(iter(children))
            else:
                status = read_text(f"/proc/{host_pid}/status")
                pid = int(status.split("\nNSpid:", 1)[1].split("\n", 1)[0].split()[-1])
            held[pid] = os.open(f"/proc/{host_pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        except (OSError, IndexError, ValueError):
            continue  # ended already
    return held


def _reap(children: dict[int, str], apps_fd: int, held: dict[int, int]) -> dict[str, int]:
    """Wait for every process of the pod (orphans are ours too); record the apps' codes (and
    return them). The mount namespace of an app that ends before the last one is let go of at
    once; the last ones' go with our exit (see `_hold_mount_namespaces`)."""
    codes: dict[str, int] = {}
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return codes
        except InterruptedError:
            continue
        if pid in children:
            codes[children[pid]] = code = exit_code_of(status)
            podinit.record_exit(apps_fd, children[pid], code)
            if pid in held and len(codes) < len(children):
                os.close(held.pop(pid))


def _tell(fd: int, message: bytes) -> None:
    """Write a whole message to a pipe; a reader that is gone (killed) hears nothing."""
    try:
        while message:
            message = message[os.write(fd, message):]
    except OSError:
        pass


def _heard(fd: int) -> bytes:
    """A message from `_tell`, up to its end (`_END`); b"" when its writer died first."""
    said = b""
    while not said.endswith(_END):
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return b""
        if not chunk:
            return b""
        said += chunk
    return said


def _kill_all(signum: int) -> None:
    try:
        os.kill(-1, signum)
    except ProcessLookupError:
        pass  # nothing left to signal


def _wire_stdio(name: str, pipes: dict[str, tuple[int, int]], interactive: bool) -> None:
    if not interactive:
        os.setsid()  # the terminal's Ctrl-C reaches the pod init, which stops apps in order
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(pipes[name][1], 1)
        os.dup2(pipes[name][1], 2)
    for _, write_end in pipes.values():  # the read ends were closed by the holder
        os.close(write_end)


def _holder(pod: Pod, manifest: dict[str, Any], runtime: dict[str, Any],
            groups: cgroups.PodCgroups, pipes: dict[str, tuple[int, int]],
            ready_w: int, host_fds: list[int], programs: dict[str, bytes | None],
            terminal: socket.socket | None, echo: bool) -> None:
    """Make the pod's namespaces, start its init inside them, pump the apps' output, record the
    pod's end, exit with the init's code. Never returns."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        init_pid = 0

        def stop(signum: int, _frame: object) -> None:
            # a SIGTERM meant for the pod (a service manager's stop reaching every process of
            # ours): the init stops the apps in order, and we stay to record it
            if init_pid:
                _kill_quietly(init_pid, signum)

        signal.signal(signal.SIGTERM, stop)
        groups.init.join_self()  # the pod's own processes, in the pod's cgroup (see cgroups)
        for fd in host_fds:  # the host's listening sockets stay with the supervisor alone
            os.close(fd)
        # (the mount namespace is the init's to make: see _pod_init)
        flags = linux.CLONE_NEWUTS | linux.CLONE_NEWIPC | linux.CLONE_NEWPID
        # the namespace stage0 made and wired with CNI; --net=none: a fresh one, loopback only
        if runtime["net"] != "host" and not join_netns(pod.path):
            flags |= linux.CLONE_NEWNET
        linux.unshare(flags)
        linux.sethostname(runtime["hostname"])
        if runtime["net"] != "host":
            linux.loopback_up()
        # the init's word that every process of the pod is reaped (an app execs without it:
        # os.pipe's descriptors close on exec)
        ended_r, ended_w = os.pipe()
        init_pid = os.fork()
        if init_pid == 0:
            os.close(ready_w)
            os.close(ended_r)
            _pod_init(pod, manifest, runtime, groups.apps, pipes, programs, terminal, ended_w)
        os.close(ended_w)
        if terminal is not None:
            terminal.close()
        for _, write_end in pipes.values():
            os.close(write_end)
        os.write(ready_w, b"ok\n")  # (the pipe stays open: the pod's code follows at its end)
        # the file of the pod's end, made while the pod runs: at its end, only its text and a
        # rename are left to do before `pyrkt run` hears the code
        stamp = PendingWrite(_join(pod.path, "finished"))
        # the pipes end when the last process holding them does: every process of the pod
        _pump_logs(pod, {name: read_end for name, (read_end, _) in pipes.items()}, echo)
        said = _heard(ended_r)
        os.close(ended_r)
        if said:  # all output pumped, every app reaped: the pod's end, before the init's exit
            codes = {}
            for line in said[:-len(_END)].decode().splitlines():
                name, _, recorded = line.partition(" ")
                codes[name] = int(recorded)
            result = finish(pod, manifest["apps"], 0, codes, stamp)
            os.closerange(0, 3)  # (as the init's: every byte is out, see _pod_init)
            _tell(ready_w, f"{_EXIT}{result}\n".encode())
            os.close(ready_w)
            ready_w = -1
        _, status = os.waitpid(init_pid, 0)
        code = exit_code_of(status)
        if not said:  # the init died without a word (killed): its status tells
            finish(pod, manifest["apps"], code, stamp=stamp)
        os._exit(code)
    except BaseException as error:  # noqa: BLE001
        try:
            os.write(ready_w, f"{error}\n".encode())
        finally:
            os._exit(125)


def _kill_quietly(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def run(pod: Pod, *, echo: bool = True, reap: bool = True) -> int:
    """Run a pod that is in `run/` and locked by the caller; returns the pod's exit code.

    Without `reap`, it returns as soon as the holder has recorded the pod's end, while the
    holder and the init are still exiting: for a caller that is about to exit itself (its
    children are then the init process's to reap); a long-lived caller would keep the holder as
    a zombie."""
    manifest, runtime = pod.manifest(), pod.runtime()
    apps = manifest["apps"]
    programs = app_filters(pod, apps, runtime)
    forwards: list[Forward] = []
    if runtime.get("forwards"):
        from .portfwd import bind_listeners, userspace_forwards

        # a busy host port fails the run before anything else is made
        forwards = bind_listeners(userspace_forwards(runtime))
    try:
        groups = make_pod_cgroups(pod)
    except BaseException:
        for forward in forwards:
            forward.listener.close()
        raise
    interactive = bool(runtime.get("interactive"))
    pipes = {} if interactive else {app["name"]: os.pipe() for app in apps}
    relay_end: socket.socket | None = None
    app_end: socket.socket | None = None
    if interactive:
        import socket

        from .terminal import Relay  # (loaded before the fork: the apps attach with it too)

        relay_end, app_end = socket.socketpair()
    try:
        os.mkdir(_init_root(pod), 0o555)
    except FileExistsError:
        pass
    ready_r, ready_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    holder = os.fork()
    if holder == 0:
        os.close(ready_r)
        if relay_end is not None:
            relay_end.close()
        _holder(pod, manifest, runtime, groups, pipes, ready_w,
                [forward.listener.fileno() for forward in forwards], programs, app_end, echo)
    os.close(ready_w)
    if app_end is not None:
        app_end.close()
    for read_end, write_end in pipes.values():  # the holder pumps them
        os.close(read_end)
        os.close(write_end)
    ready = _Lines(ready_r)
    answer = ready.line()
    if answer != "ok":
        os.close(ready_r)
        if relay_end is not None:
            relay_end.close()
        os.waitpid(holder, 0)
        for forward in forwards:
            forward.listener.close()
        cgroups.remove(groups.pod_dirs)
        raise LauncherError(f"cannot start pod {pod.uuid}: {answer or 'stage1 died'}")
    forwarder = None
    if forwards:
        from .portfwd import Forwarder

        forwarder = Forwarder(forwards, os.open(f"/proc/{holder}/ns/net", os.O_RDONLY | os.O_CLOEXEC))
        forwarder.start()
    relay = None
    if relay_end is not None:
        relay = Relay(relay_end, _join(pod.app_dir(apps[0]["name"]), "log"), echo)
        if not relay.start():
            relay = None
    previous = _forward_signals_to(pod)
    status = None
    try:
        said = ready.line()  # `exit CODE` once the holder recorded the end; "" if it died first
        if reap or not said.startswith(_EXIT):
            status = _wait_child(holder)
        if not said.startswith(_EXIT) and os.WIFSIGNALED(status or 0):
            _wait_gone(pod.live_pid())  # the holder was killed: the pod's end is its init's
    finally:
        os.close(ready_r)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if relay is not None:
            relay.finish()
    if forwarder is not None:
        forwarder.close()
        os.close(forwarder.netns_fd)
    if said.startswith(_EXIT):
        return int(said[len(_EXIT):])
    # the holder recorded the end from the init's status; if it was killed itself, whatever
    # it could not write
    return finish(pod, apps, exit_code_of(status or 0))


class _Lines:
    """The lines of a pipe, one at a time, as they come (a line may arrive with the next)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buffer = fd, b""

    def line(self) -> str:
        """The next line without its newline; "" at the end of the pipe."""
        while b"\n" not in self.buffer:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                rest, self.buffer = self.buffer, b""
                return rest.decode(errors="replace").strip()
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode(errors="replace").strip()


def _wait_child(pid: int) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:
            continue


def _wait_gone(pid: int | None) -> None:
    """Until process `pid` (not our child) has exited."""
    if pid is None:
        return
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # gone already
        return
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll():
            pass
    finally:
        os.close(fd)


def _forward_signals_to(pod: Pod) -> dict[int, Any]:
    """While we wait, Ctrl-C or SIGTERM to `pyrkt run` asks the pod's init to stop the apps;
    a second one kills them (the init's grace period is long: an impatient user should not
    have to find the pod's UUID and run `pyrkt stop --force`)."""
    asked: list[bool] = []

    def forward(_signum: int, _frame: object) -> None:
        pid = pod.pid()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL if asked else signal.SIGTERM)
            except ProcessLookupError:
                pass
        asked.append(True)

    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, forward)
        except ValueError:  # not the main thread (an in-process caller): it keeps its own
            break
    return previous


def finish(pod: Pod, apps: list[dict[str, Any]], holder_code: int,
           known: dict[str, int] | None = None, stamp: PendingWrite | None = None) -> int:
    """Record the end (once: the holder does, and `pyrkt run` again only for what a killed holder
    could not); an app without an exit code died with its pod (killed by the kernel). `known`:
    codes already recorded (the init's message), not read again; `stamp`: the `finished`
    file, begun ahead. Returns the pod's code."""
    codes = []
    for app in apps:
        code = known.get(app["name"]) if known else None
        if code is None:
            code = pod.exit_code(app["name"])
        if code is None:
            code = holder_code if holder_code >= 128 else 128 + signal.SIGKILL
            write_atomic(_join(pod.app_dir(app["name"]), "exit"), f"{code}\n")
        codes.append(code)
    if pod.end_recorded():
        pass
    elif stamp is not None:
        stamp.commit(timestamp_text())
    else:
        pod.write_timestamp("finished")
    return next((c for c in codes if c != 0), 0)
