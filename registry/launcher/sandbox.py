"""Inside the pod: turn a forked child into the app (mounts, pivot_root, identity, exec).

Everything here is imported before the fork (the terminal's module, for --interactive alone,
before the app's pivot_root): once an app is in its own root it could not import a module from
the host any more.

Runs in the pod's PID, UTS, IPC and network namespaces, in a mount namespace of its own, as root
until the last moment. Order matters: join the cgroups while the host's /sys is still visible,
build the root (overlay or bind, volumes, /proc, /dev), pivot into it and detach the host's
tree (after that no host path outside the volumes is reachable), then drop to the app's user.
"""

from __future__ import annotations

import os
import stat

from . import linux, seccomp
from .capabilities import limit_bounding_set, no_new_privileges, retained, set_no_new_privs
from .cgroups import AppCgroup
from .network.dns import bind_pod_files
from .rootfs import file_in_root, mount_overlay, overlay_lower, resolve_in_root, touch

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable
    from typing import Any

    from _typeshed import StrPath

# Paths are plain strings and os.path (pathlib costs every start ~6 ms of imports); the pod's
# directory may come as a str or an os.PathLike.

DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
           "urandom": (1, 9), "tty": (5, 0)}


def _bind(source: str, target: str, *, read_only: bool) -> None:
    linux.mount(source, target, None, linux.MS_BIND | linux.MS_REC)
    if read_only:
        # A bind mount ignores MS_RDONLY on creation: read-only needs a second, remount step.
        linux.mount(None, target, None,
                    linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_REC)


def _mount_volumes(root: str, pod_dir: StrPath, manifest: dict[str, Any],
                   app: dict[str, Any]) -> None:
    volumes = {v["name"]: v for v in manifest.get("volumes") or []}
    points = {p["path"]: bool(p.get("readOnly")) for p in app["app"].get("mountPoints") or []}
    for mount in app.get("mounts") or []:
        volume = volumes[mount["volume"]]
        source = volume["source"] if volume["kind"] == "host" else \
            os.path.join(pod_dir, "volumes", volume["name"])
        if os.path.isdir(source):
            target = resolve_in_root(root, mount["path"], create_dirs=True)
        else:  # a single file: bind it onto a file (a symlink there resolved inside the root)
            target, present = file_in_root(root, mount["path"])
            if not present:
                touch(target)
        read_only = bool(volume.get("readOnly")) or points.get(mount["path"], False)
        _bind(source, target, read_only=read_only)


def _mount_dev(root: str) -> None:
    dev = resolve_in_root(root, "/dev", create_dirs=True)
    linux.mount("tmpfs", dev, "tmpfs", linux.MS_NOSUID, "mode=755,size=65536k")
    umask = os.umask(0)  # the nodes are 0666 whatever the umask (one call, not a chmod each)
    try:
        for name, (major, minor) in DEVICES.items():
            os.mknod(os.path.join(dev, name), stat.S_IFCHR | 0o666, os.makedev(major, minor))
    finally:
        os.umask(umask)
    pts, shm = os.path.join(dev, "pts"), os.path.join(dev, "shm")
    os.mkdir(pts)
    linux.mount("devpts", pts, "devpts", linux.MS_NOSUID | linux.MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620")
    os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
    os.mkdir(shm)
    linux.mount("shm", shm, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=1777,size=65536k")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, os.path.join(dev, name))


def build_root(pod_dir: StrPath, manifest: dict[str, Any], app: dict[str, Any],
               rootfs_mode: str, *, protect_paths: bool = True) -> str:
    app_dir = os.path.join(pod_dir, "apps", app["name"])
    root = os.path.join(app_dir, "rootfs")
    if rootfs_mode == "overlay":
        mount_overlay(overlay_lower(app_dir), os.path.join(app_dir, "upper"),
                      os.path.join(app_dir, "work"), root)
    else:
        linux.mount(root, root, None, linux.MS_BIND | linux.MS_REC)  # pivot_root needs a mount point
    _mount_volumes(root, pod_dir, manifest, app)
    bind_pod_files(root, pod_dir, app)  # /etc/hosts, /etc/resolv.conf (network.dns)
    mount_api_filesystems(root)
    mount_sys(root, read_only=protect_paths)
    if protect_paths:
        protect_kernel(root)
    if app.get("readOnlyRootFS"):
        linux.mount(None, root, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)
    return root


def mount_api_filesystems(root: StrPath) -> None:
    """A fresh /proc for the pod's PID namespace, a minimal /dev, and a /tmp to write in."""
    top = os.fspath(root)
    proc = resolve_in_root(top, "/proc", create_dirs=True)
    linux.mount("proc", proc, "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    _mount_dev(top)
    resolve_in_root(top, "/tmp", create_dirs=True)


# rkt's stage1 protections of kernel interfaces (its "protectKernelTunables" lists and
# systemd's ProtectKernelTunables=), lifted by --insecure-options=paths: files that expose
# kernel memory, keys or timing of other processes are hidden (/dev/null bound over them),
# directories of the same kind hidden behind an empty read-only tmpfs, and the tunables
# (/proc/sys, /proc/sysrq-trigger, ...) read-only; /sys as a whole is mounted read-only.
HIDDEN_FILES = ("/proc/kcore", "/proc/kallsyms", "/proc/kmem", "/proc/mem", "/proc/config.gz",
                "/proc/sched_debug", "/proc/timer_list", "/proc/timer_stats",
                "/proc/latency_stats", "/proc/keys", "/proc/key-users")
HIDDEN_DIRS = ("/proc/acpi", "/proc/scsi", "/sys/firmware", "/sys/fs", "/sys/hypervisor",
               "/sys/module", "/sys/power")
READ_ONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
_KERNEL_NAMES = {top: {p.split("/")[2] for p in (*HIDDEN_FILES, *HIDDEN_DIRS, *READ_ONLY)
                       if p.split("/")[1] == top} for top in ("proc", "sys")}


def mount_sys(root: str, *, read_only: bool) -> None:
    """sysfs, as the pod's network namespace shows it (its own interfaces only)."""
    target = resolve_in_root(root, "/sys", create_dirs=True)
    flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
    linux.mount("sysfs", target, "sysfs", flags | (linux.MS_RDONLY if read_only else 0))


def protect_kernel(root: str) -> None:
    # /proc and /sys are the kernel's own, mounted fresh just now: their names are the kernel's
    # (no symlink among these), so one listing of each says what is there and of which kind,
    # where a stat of every path in the lists would cost the start 23 system calls
    present: dict[str, os.DirEntry[str]] = {}
    for top, wanted in _KERNEL_NAMES.items():
        with os.scandir(os.path.join(root, top)) as listing:
            for item in listing:
                if item.name in wanted:
                    present[f"/{top}/{item.name}"] = item
    for path in HIDDEN_FILES:
        entry = present.get(path)
        if entry is not None and entry.is_file():
            linux.mount("/dev/null", os.path.join(root, path[1:]), None, linux.MS_BIND)
    for path in HIDDEN_DIRS:
        entry = present.get(path)
        if entry is not None and entry.is_dir():
            linux.mount("tmpfs", os.path.join(root, path[1:]), "tmpfs", linux.MS_RDONLY |
                        linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC, "mode=0555,size=4k")
    for path in READ_ONLY:
        if path in present:
            target = os.path.join(root, path[1:])
            _bind(target, target, read_only=True)


def enter_root(root: StrPath) -> None:
    """pivot_root into `root` and drop the host's tree entirely."""
    os.chdir(root)
    linux.pivot_root(".", ".")  # stack the old root on top of the new one...
    linux.umount(".", linux.MNT_DETACH)  # ...and detach it: the host's files are gone
    os.chdir("/")


def _lookup(path: str, value: str, what: str) -> tuple[int, int | None]:
    """(id, primary gid) of `value` (name, number) in the image's passwd/group file."""
    if value.isdigit():
        return int(value), None
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == value:
            return int(fields[2]), int(fields[3]) if what == "user" else None
        if len(fields) >= 3 and fields[0] == value and what == "group":
            return int(fields[2]), None
    raise OSError(f'{what} "{value}" is not a number and is not in the image\'s {path}')


def resolve_identity(user: str, group: str, root: StrPath | None = None) -> tuple[int, int]:
    """appc users and groups: a number, a name from the image's files, or a path whose owner
    counts. `root`: the image's root seen from outside (the systemd stage1); None: we are in it."""
    def inside(path: str) -> str:
        return path if root is None else resolve_in_root(os.fspath(root), path)

    if user.startswith("/"):
        uid = os.stat(inside(user)).st_uid
    else:
        uid = _lookup(inside("/etc/passwd"), user, "user")[0]
    if group.startswith("/"):
        gid = os.stat(inside(group)).st_gid
    else:
        gid = _lookup(inside("/etc/group"), group, "group")[0]
    return uid, gid


def become_app(pod_dir: StrPath, manifest: dict[str, Any], app: dict[str, Any],
               runtime: dict[str, Any], cgroup: AppCgroup, record_pid: Callable[[int], None],
               unshared: Callable[[], None] = lambda: None,
               program: bytes | None = None, terminal: socket.socket | None = None,
               host_dropped: Callable[[], None] = lambda: None) -> None:
    """Never returns: exec the app or exit 126/127 with the reason on stderr (the app's log).

    `unshared` is called as soon as the app has a mount namespace of its own (the pod init
    waits for that before it drops the host's tree from its own namespace); `host_dropped`
    before the app's own program runs, to wait until the init has dropped it (else an app with
    CAP_SYS_PTRACE could still read the host's tree through /proc/1/root, for as long as the
    init takes to pivot: a busy host lets an app get that far first).
    """
    section = app["app"]
    insecure = set(runtime.get("insecure") or ())
    try:
        if terminal is not None:  # here, while the host's files are still there to load it
            from .terminal import attach_app
        linux.unshare(linux.CLONE_NEWNS)
        unshared()
        record_pid(int(os.readlink("/proc/self")))  # host /proc still mounted: the host's PID
        cgroup.join_self()
        root = build_root(pod_dir, manifest, app, runtime["rootfs"],
                          protect_paths="paths" not in insecure)
        enter_root(root)
        uid, gid = resolve_identity(str(section.get("user", "0")), str(section.get("group", "0")))
        if terminal is not None:  # --interactive: a pty of the pod's own (see `terminal`)
            attach_app(terminal, uid, gid)
        host_dropped()
        confine(section, insecure, uid, program)
        groups = [int(g) for g in section.get("supplementaryGIDs") or []]
        os.setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)
        os.chdir(section.get("workingDirectory") or "/")
        env = {e["name"]: e["value"] for e in section.get("environment") or []}
        env.setdefault("AC_APP_NAME", app["name"])
        argv = list(section["exec"])
        linux.default_signals_for_exec()
        if program is not None:
            seccomp.load(program)  # last: from here on only what the filter allows (execve)
    except Exception as error:  # noqa: BLE001 - anything here means the app cannot start
        os.write(2, f"pyrkt: app {app['name']}: cannot start: {error}\n".encode())
        os._exit(126)
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as error:
        os.write(2, f"pyrkt: app {app['name']}: cannot execute {argv[0]}: "
                    f"{error.strerror}\n".encode())
        os._exit(127 if error.errno == 2 else 126)


def confine(section: dict[str, Any], insecure: set[str], uid: int,
            program: bytes | None) -> None:
    """The app's privileges, as its isolators and rkt's defaults say (apps and `pyrkt enter`):
    the capability bounding set cut to the retained set; no_new_privs when the isolator asks,
    and for an app that does not run as root but gets a seccomp filter (without CAP_SYS_ADMIN
    the kernel installs one only under no_new_privs; rkt sets it then too). The filter itself
    is loaded by the caller, last, right before exec."""
    if "capabilities" not in insecure:
        limit_bounding_set(retained(section))
    if no_new_privileges(section) or (program is not None and uid != 0):
        set_no_new_privs()


def filter_for(section: dict[str, Any], insecure: set[str], cache_dir: StrPath) -> bytes | None:
    """The compiled seccomp program of an app (None: no filter), from the cache when it can."""
    keeps_admin = "capabilities" in insecure or "CAP_SYS_ADMIN" in retained(section)
    spec = seccomp.spec_for(section, insecure, keeps_admin)
    return None if spec is None else seccomp.cached_filter(spec, cache_dir)
