"""What makes the pod's PID 1 reveal nothing of the host.

The pod init is a fork of `pyrkt run` (no exec: a second interpreter would cost 15-20 ms of
every run, and the init needs nothing but fork, wait and kill). Left as it is, every app could
read its host command line (/proc/1/cmdline: the virtual environment's path, every flag), its
environment and, through /proc/1/root, the host's whole tree. So, before it forks any app:

- its command line, as /proc shows it, becomes "pyrkt-init" (and its name too), the
  environment block the kernel shows is wiped;
- it becomes non-dumpable: /proc/1/environ, root, cwd, exe, fd, maps and mem then need
  CAP_SYS_PTRACE, which apps do not get by default, and ptrace(2) of it is refused;

and once every app has its own mount namespace, it pivots its own (shared with nobody else
in the pod) into an empty, read-only tmpfs, so /proc/1/root and /proc/1/mountinfo show nothing
even to an app that was given CAP_SYS_PTRACE. What it still needs of the host (the apps'
directories, to write exit codes; the pod lock) it keeps as open descriptors.
"""

from __future__ import annotations

import os

from . import linux

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _typeshed import StrPath

INIT_NAME = b"pyrkt-init"

PR_SET_NAME = 15
PR_SET_DUMPABLE = 4

def _prctl(option: int, arg2: bytes | linux.c_ulong) -> None:
    zero = linux.c_ulong(0)
    linux.check(linux.libc.prctl(linux.c_int(option), arg2, zero, zero, zero),
                f"prctl({option}, {arg2!r})")


def hide_host() -> None:
    """Show only INIT_NAME as this process's command line and name, wipe the environment block
    the kernel shows, and make the process non-dumpable.

    The command line /proc shows is the memory between arg_start and arg_end: it is overwritten
    in place with INIT_NAME and zeros, its last byte set non-zero, which (since Linux 4.18)
    makes the kernel read it as a title set by setproctitle(3) and stop at the first zero:
    /proc/1/cmdline is then exactly INIT_NAME. (prctl(PR_SET_MM) could point /proc elsewhere,
    but needs CAP_SYS_RESOURCE, which some hosts withhold even from root.) Python copied argv
    and the environment at start-up, so neither `sys.argv` nor `os.environ` changes.
    """
    # os-level: the init's first file, where a text-mode open costs ~0.2 ms more (see cgroups)
    fd = os.open("/proc/self/stat", os.O_RDONLY | os.O_CLOEXEC)
    try:
        stat = os.read(fd, 4096)  # one line, well under a page
    finally:
        os.close(fd)
    fields = stat.decode().rsplit(")", 1)[1].split()
    # fields[0] is field 3 of proc(5): arg_start..env_end are fields 48-51
    arg_start, arg_end, env_start, env_end = (int(f) for f in fields[45:49])
    size = arg_end - arg_start
    if size > 1:
        name = INIT_NAME[:size - 2]
        linux.write_memory(arg_start, name.ljust(size - 1, b"\0") + b".")
    if env_end > env_start:
        linux.zero_memory(env_start, env_end - env_start)
    _prctl(PR_SET_NAME, INIT_NAME)  # (a bytes object is passed as its NUL-terminated buffer)
    _prctl(PR_SET_DUMPABLE, linux.c_ulong(0))


def enter_empty_root(mount_point: StrPath) -> None:
    """Pivot this mount namespace into a fresh read-only tmpfs at `mount_point` and drop the
    host's tree from it. Call only once no other process needs this namespace's files."""
    linux.mount("pyrkt-init", os.fspath(mount_point), "tmpfs", linux.MS_NOSUID | linux.MS_NODEV |
                linux.MS_NOEXEC, "mode=0555,size=4k")
    os.chdir(mount_point)
    linux.pivot_root(".", ".")
    linux.umount(".", linux.MNT_DETACH)
    os.chdir("/")
    linux.mount(None, "/", None, linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_NOSUID |
                linux.MS_NODEV | linux.MS_NOEXEC)


def record_exit(apps_fd: int, app: str, code: int) -> None:
    """Write apps/<app>/exit atomically through a descriptor of apps/ (the init sees no paths)."""
    temp = f"{app}/.exit.init.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644,
                 dir_fd=apps_fd)
    try:
        os.write(fd, f"{code}\n".encode())
    finally:
        os.close(fd)
    os.replace(temp, f"{app}/exit", src_dir_fd=apps_fd, dst_dir_fd=apps_fd)
    try:
        os.unlink(f"{app}/pid", dir_fd=apps_fd)
    except FileNotFoundError:
        pass


def wait_for_eof(fd: int) -> None:
    """Block until every holder of the pipe's write end has closed it."""
    while True:
        try:
            if not os.read(fd, 64):
                break
        except InterruptedError:
            continue
    os.close(fd)
