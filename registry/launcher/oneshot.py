"""Run one command inside a bare root directory, through the builtin stage1's machinery.

This is what `acbuild run -- CMD` needs: the command sees the image being built as `/` (changes
persist in that directory), its own PID, mount, UTS and IPC namespaces, a fresh /proc and a
minimal /dev, and — as acbuild did with systemd-nspawn — the host's network so package managers
can download. No pod, no store: the builder owns the directory.

    from registry.launcher.oneshot import run_in_rootfs
    code = run_in_rootfs(Path(".acbuild/currentaci/rootfs"), ["/bin/sh", "-c", "echo hi"])
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from . import linux
from .errors import LauncherError
from .sandbox import enter_root, mount_api_filesystems, resolve_identity
from .stage1_builtin import exit_code_of


def run_in_rootfs(rootfs: Path, argv: list[str], *, env: dict[str, str] | None = None,
                  working_dir: str = "/", user: str = "0", group: str = "0",
                  private_network: bool = False, hostname: str = "acbuild") -> int:
    """Run `argv` with `rootfs` as `/`; returns its exit code (128+N when killed by signal N).

    Output goes to our own stdout/stderr. Raises LauncherError when it cannot start at all.
    """
    if os.geteuid() != 0:
        raise LauncherError("running a command in an image needs root (namespaces)")
    root = Path(rootfs).resolve()
    if not root.is_dir():
        raise LauncherError(f"{root} is not a directory")
    if not argv:
        raise LauncherError("no command given")
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        _holder(root, argv, env or {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
                working_dir, user, group, private_network, hostname, ready_w)
    os.close(ready_w)
    with os.fdopen(ready_r, "rb") as ready:
        problem = ready.read().decode(errors="replace").strip()
    _, status = os.waitpid(pid, 0)
    if problem:
        raise LauncherError(f"cannot run {argv[0]} in {root}: {problem}")
    return exit_code_of(status)


def _holder(root: Path, argv: list[str], env: dict[str, str], working_dir: str, user: str,
            group: str, private_network: bool, hostname: str, ready_w: int) -> None:
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        flags = linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC | linux.CLONE_NEWPID
        if private_network:
            flags |= linux.CLONE_NEWNET
        linux.unshare(flags)
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        linux.sethostname(hostname)
        child = os.fork()
        if child == 0:
            _command(root, argv, env, working_dir, user, group, ready_w)
        os.close(ready_w)
        _, status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(status)
        os._exit(code if code >= 0 else 128 - code)
    except BaseException as error:  # noqa: BLE001
        os.write(ready_w, str(error).encode())
        os._exit(125)


def _command(root: Path, argv: list[str], env: dict[str, str], working_dir: str, user: str,
             group: str, ready_w: int) -> None:
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        linux.mount(str(root), str(root), None, linux.MS_BIND | linux.MS_REC)
        mount_api_filesystems(root)
        enter_root(root)
        uid, gid = resolve_identity(user, group)
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        os.chdir(working_dir)
        os.set_inheritable(ready_w, False)
        linux.default_signals_for_exec()
    except BaseException as error:  # noqa: BLE001
        os.write(ready_w, str(error).encode())
        os._exit(125)
    os.close(ready_w)
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as error:
        os.write(2, f"cannot execute {argv[0]}: {error.strerror}\n".encode())
        os._exit(127 if error.errno == 2 else 126)
