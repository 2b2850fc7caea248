"""`pyrkt enter`: run a command inside a running app, confined as the app is.

The command joins the app's namespaces (mount, UTS, IPC, network, PID), its cgroups (so `pyrkt
stop` and the app's limits reach it too) and its root, and runs as root with the app's
capability set, no_new_privs and seccomp filter, and the app's environment (plus the caller's
TERM): what an app could not do, a shell entered into it cannot do either. The `pyrkt` process
itself stays on the host (only its children are in the pod's PID namespace), waits for the
command and exits with its code.
"""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

from . import linux, seccomp
from .errors import LauncherError
from .manage import EnterTarget
from .sandbox import confine, filter_for
from .seccomp import cache_dir as seccomp_cache
from .stage1_builtin import exit_code_of
from .terminal import Relay, attach_app

NAMESPACES = (("ipc", linux.CLONE_NEWIPC), ("uts", linux.CLONE_NEWUTS),
              ("net", linux.CLONE_NEWNET), ("mnt", linux.CLONE_NEWNS))


def _open(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        raise LauncherError(f"cannot enter the app (its process {path.split('/')[2]} is gone?): "
                            f"{error.strerror}") from None


def run_entered(target: EnterTarget) -> int:
    """Run target.command in the app; returns its exit code (128+N when killed by signal N)."""
    insecure = set(target.pod.runtime().get("insecure") or ())
    program = filter_for(target.app["app"], insecure, seccomp_cache(target.pod.store_dir))
    pid = target.pid
    # From a terminal, the command gets one of the pod's own (as --interactive apps do): the
    # caller's is not in the pod's devpts, so `tty`, job control and window sizes would fail.
    relay_end, child_end = socket.socketpair() if os.isatty(0) else (None, None)
    fds = {name: _open(f"/proc/{pid}/ns/{name}") for name, _ in NAMESPACES}
    pid_ns = _open(f"/proc/{pid}/ns/pid")
    root = _open(f"/proc/{pid}/root")
    try:
        linux.setns(pid_ns, linux.CLONE_NEWPID)  # for our children only: we stay on the host
        child = os.fork()
        if child == 0:
            if relay_end is not None:
                relay_end.close()
            _child(target, fds, root, insecure, program, child_end)
        relay = None
        if relay_end is not None and child_end is not None:
            child_end.close()
            relay = Relay(relay_end, None, echo=True)
            # no thread: a process whose children go to another PID namespace may not make
            # threads (the kernel refuses CLONE_THREAD then), so we relay here, then wait
            if relay.start(threaded=False):
                relay.pump()
            else:
                relay = None
        previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGQUIT)}
        try:
            while True:
                try:
                    _, status = os.waitpid(child, 0)
                    break
                except InterruptedError:
                    continue
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if relay is not None:
                relay.finish()
        return exit_code_of(status)
    finally:
        for fd in (*fds.values(), pid_ns, root):
            os.close(fd)


def _child(target: EnterTarget, fds: dict[str, int], root: int, insecure: set[str],
           program: bytes | None, terminal: socket.socket | None) -> None:
    section: dict[str, Any] = target.app["app"]
    command = target.command
    try:
        for directory in target.pod.cgroup_dirs_of(target.app["name"]):
            with open(os.path.join(directory, "cgroup.procs"), "w") as procs:
                procs.write("0")
        for name, nstype in NAMESPACES:
            linux.setns(fds[name], nstype)
        os.fchdir(root)
        os.chroot(".")
        os.chdir(section.get("workingDirectory") or "/")
        env = {e["name"]: e["value"] for e in section.get("environment") or []}
        env.setdefault("AC_APP_NAME", target.app["name"])
        if os.environ.get("TERM"):
            env["TERM"] = os.environ["TERM"]
        if terminal is not None:
            attach_app(terminal, 0, 0)
        confine(section, insecure, 0, program)
        linux.default_signals_for_exec()
        if program is not None:
            seccomp.load(program)
    except Exception as error:  # noqa: BLE001 - the command cannot start
        os.write(2, f"pyrkt: enter: {error}\n".encode())
        os._exit(126)
    try:
        os.execvpe(command[0], command, env)
    except OSError as error:
        os.write(2, f"pyrkt: enter: cannot execute {command[0]}: {error.strerror}\n".encode())
        os._exit(127 if error.errno == 2 else 126)
