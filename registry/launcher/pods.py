"""Pods on disk and their states, moved atomically as rkt did.

A pod lives in `<store>/pods/<state-dir>/<uuid>/`; its state is *where* it is plus whether its
directory is locked (`flock` on the directory itself, which survives a rename):

    pods/embryo/<uuid>          embryo       being created (locked)
    pods/prepare/<uuid>         preparing    images being rendered (locked); unlocked: aborted
    pods/prepared/<uuid>        prepared     ready for `run-prepared`
    pods/run/<uuid>             running      locked, or any of the pod's processes alive
    pods/run/<uuid>             exited       the same directory once both are over, or its
                                             end is recorded (`finished`: see below)
    pods/exited-garbage/<uuid>  garbage      an exited pod marked by `gc`
    pods/garbage/<uuid>         garbage      a pod that never ran (aborted or expired prepare)

A state change is one `rename(2)` done while holding the pod's lock, so another `pyrkt` command
sees the pod either before or after the change, never half-made.

A pod in `run/` is running while its lock is held (by `pyrkt run` and by the pod's own
long-lived processes, which inherit the descriptor) OR while a process of the pod is alive: its
cgroups hold a process (`cgroups`, v2's `populated`; v1: a task at any level below), or its
recorded init still runs with the start time recorded for it (a reused PID is not the pod).
The second half is what makes a pod whose launcher was killed, or whose processes were started
by systemd rather than forked by us, still `running`: `status` says so, `stop`/`enter`/`logs`
work, and `gc`/`rm` leave it alone.

UNLESS its end is recorded (the `finished` stamp): a pod in `run/` with that stamp is exited,
whoever still holds its lock. The stamp is written only once no app can run any more (every app
reaped and its code written, whatever else is left in the pod being killed; see each stage1's
`finish`), and a run that fails writes it only if no process of the pod is alive (see
run._run_found). So what may still hold the lock or sit in the cgroups then is the stage1's own
last processes, on their way out (the builtin holder and init a moment after `pyrkt run`
returned the pod's code; a machine's supervisor tearing its network down). `rm` and `gc` wait
for those, bounded (manage.LAST_PROCESSES_WAIT), instead of refusing the pod as "in use".

Inside a pod directory:

    pod                      the PodManifest (JSON), as `pyrkt cat-manifest` prints it
    runtime.json             how to run it: network mode, hostname, ports, rootfs mode, stage1
    created, started, finished, marked   timestamps (seconds since the epoch, one per file)
    pid                      host PID of the pod's init (what `stop` signals)
    pid-start                its start time (/proc/PID/stat's starttime: a reused PID differs)
    cgroups                  JSON list of the pod's own cgroup directories (every pod process
                             is below one of them: see `cgroups`; systemd: the pod unit's)
    limits.json              the limits in force per app (see `limits`)
    apps/<app>/rootfs        the app's root (overlay mount point, or a private copy)
    apps/<app>/upper, work   overlayfs upper and work directories (overlay mode)
    apps/<app>/log           the app's stdout and stderr
    apps/<app>/exit          the app's exit code (128+N when killed by signal N)
    apps/<app>/pid           host PID of the app's process while it runs
    apps/<app>/cgroups       JSON list of the cgroup directories made for the app
    volumes/<name>           kind=empty volumes, shared by the pod's apps
    stage1, unit, machine/   the systemd stage1's: its flavour, the pod's unit, the machine's root
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from registry import jsontext
from registry.records import field, record

from .errors import LauncherError, PodNotFound

# Paths here are strings (os.path), and the standard library's typing, pathlib and json stay
# out: each `pyrkt` command is a fresh process, and those imports (with the re and enum they
# load) cost ~15 ms of every start. Every path taken accepts a str or an os.PathLike.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from _typeshed import StrPath

_join = os.path.join

STATE_DIRS = ("embryo", "prepare", "prepared", "run", "exited-garbage", "garbage")


def pods_root(store_dir: StrPath) -> str:
    return _join(store_dir, "pods")


def _ensure_layout(store_dir: StrPath) -> str:
    root = pods_root(store_dir)
    try:  # one read of pods/ rather than six mkdirs refused as existing, at every prepare
        present = set(os.listdir(root))
    except FileNotFoundError:
        present = set()
    for name in STATE_DIRS:
        if name not in present:
            os.makedirs(_join(root, name), exist_ok=True)
    return root


def read_text(path: StrPath) -> str:
    """A small file's text (what Path.read_text does, without pathlib)."""
    with open(path, encoding="utf-8") as handle:
        return handle.read()


class PodLock:
    """An flock on a pod directory; the open descriptor follows the directory through renames."""

    def __init__(self, path: StrPath) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def try_exclusive(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def exclusive(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def exclusive_within(self, timeout: float, interval: float = 0.002) -> bool:
        """The exclusive lock if it is let go of within `timeout` seconds (flock(2) itself
        waits without a bound)."""
        deadline = time.monotonic() + timeout
        while not self.try_exclusive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
        return True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> PodLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_locked(path: StrPath) -> bool:
    """Someone holds the pod's lock (we test with a non-blocking shared lock)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from its third field on (the command name may hold spaces and ')')."""
    try:
        stat = read_text(f"/proc/{pid}/stat")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def process_start(pid: int) -> int | None:
    """The start time of process `pid` (clock ticks after boot), None if there is none."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])  # field 22 of proc(5)


PF_EXITING = 0x4  # the kernel's flag of a task in its exit (include/linux/sched.h)


def process_exiting(pid: int) -> bool:
    """Is process `pid` gone, or in its exit? (A PID namespace's init stays there until every
    process of the namespace is reaped; no signal moves it on.)"""
    fields = _stat_fields(pid)
    return fields is None or bool(int(fields[6]) & PF_EXITING)  # field 9: flags


def record_pid(path: StrPath, pid: int) -> None:
    """Write `pid` (rkt's file: the PID alone) with its start time beside it, start first."""
    start = process_start(pid)
    if start is not None:
        write_atomic(os.fspath(path) + "-start", f"{start}\n")
    write_atomic(path, f"{pid}\n")


def cgroup_populated(directory: StrPath) -> bool:
    """Does this cgroup, or any cgroup below it, hold a process?"""
    try:
        for line in read_text(_join(directory, "cgroup.events")).splitlines():  # v2
            key, _, value = line.partition(" ")
            if key == "populated":
                return value.strip() == "1"
    except FileNotFoundError:
        pass
    except OSError:
        return False
    for root, _dirs, _files in os.walk(directory):  # v1 has no summary: look at every level
        try:
            if read_text(_join(root, "cgroup.procs")).strip():
                return True
        except OSError:
            continue
    return False


@record
class Pod:
    """A pod found on disk, at the moment it was looked at."""

    store_dir: str
    uuid: str
    state_dir: str
    path: str
    locked: bool
    _alive: bool | None = field(default=None, repr=False, compare=False)
    # what this process read of the pod's files that never change once it is prepared (each
    # read, and JSON parse, once: a run reads the manifest in stage0, the limits and the stage1)
    _manifest: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    _runtime: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    # -- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        if self.state_dir == "embryo":
            return "embryo"
        if self.state_dir == "prepare":
            return "preparing" if self.locked else "aborted-prepare"
        if self.state_dir == "prepared":
            return "prepared"
        if self.state_dir == "run":
            # (the stamp is read only for a pod that looks alive: the one case it decides)
            return "running" if (self.locked or self.processes_alive()) and \
                not self.end_recorded() else "exited"
        return "deleting" if self.locked else (
            "exited-garbage" if self.state_dir == "exited-garbage" else "garbage")

    @property
    def is_running(self) -> bool:
        return self.state == "running"

    def refresh(self) -> Pod:
        return find_pod(self.store_dir, self.uuid)

    def move(self, state_dir: str) -> None:
        """Rename into another state directory; the caller holds the pod's lock."""
        target = _join(pods_root(self.store_dir), state_dir, self.uuid)
        os.rename(self.path, target)
        self.path, self.state_dir = target, state_dir

    # -- files ---------------------------------------------------------------------------------

    def manifest_bytes(self) -> bytes:
        try:
            with open(_join(self.path, "pod"), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise LauncherError(f"pod {self.uuid} has no manifest yet (state {self.state})") from None

    def manifest(self) -> dict[str, Any]:
        """The pod manifest, parsed once per Pod (callers read it, never change it)."""
        if self._manifest is None:
            self._manifest = jsontext.loads(self.manifest_bytes())
        return self._manifest

    def runtime(self) -> dict[str, Any]:
        """runtime.json, parsed once per Pod ({} before it is written: not kept)."""
        if self._runtime is None:
            try:
                self._runtime = jsontext.loads(read_text(_join(self.path, "runtime.json")))
            except FileNotFoundError:
                return {}
        return self._runtime

    def timestamp(self, name: str) -> float | None:
        try:
            return float(read_text(_join(self.path, name)).strip())
        except (OSError, ValueError):
            return None

    def write_timestamp(self, name: str, when: float | None = None) -> None:
        write_atomic(_join(self.path, name), timestamp_text(when))

    def end_recorded(self) -> bool:
        """Has a stage1 recorded the pod's end (its `finished` stamp)? See the module's text."""
        return os.path.exists(_join(self.path, "finished"))

    def pid(self) -> int | None:
        try:
            return int(read_text(_join(self.path, "pid")).strip())
        except (OSError, ValueError):
            return None

    def live_pid(self) -> int | None:
        """The recorded init's PID if that very process still runs (same start time)."""
        pid = self.pid()
        if pid is None:
            return None
        start = process_start(pid)
        if start is None:
            return None
        try:
            recorded = int(read_text(_join(self.path, "pid-start")).strip())
        except (OSError, ValueError):
            return pid  # recorded by a stage1 that keeps no start time: the PID alone
        return pid if recorded == start else None

    def pod_cgroup_dirs(self) -> list[str]:
        try:
            return [str(p) for p in jsontext.loads(read_text(_join(self.path, "cgroups")))]
        except (OSError, ValueError):
            return []

    def processes_alive(self) -> bool:
        """Does any process of the pod still run, whoever holds (or dropped) its lock?"""
        if self._alive is None:
            dirs = self.pod_cgroup_dirs()
            if dirs:
                self._alive = any(cgroup_populated(d) for d in dirs)
            else:  # a pod without cgroups of its own: its recorded init
                self._alive = self.live_pid() is not None
        return self._alive

    def app_names(self) -> list[str]:
        try:
            return [app["name"] for app in self.manifest().get("apps", [])]
        except LauncherError:
            return []

    def app_dir(self, app: str) -> str:
        return _join(self.path, "apps", app)

    def exit_code(self, app: str) -> int | None:
        try:
            return int(read_text(_join(self.path, "apps", app, "exit")).strip())
        except (OSError, ValueError):
            return None

    def cgroup_dirs(self) -> list[str]:
        return [d for app in self.app_names() for d in self.cgroup_dirs_of(app)]

    def cgroup_dirs_of(self, app: str) -> list[str]:
        try:
            return [str(p) for p in jsontext.loads(read_text(_join(self.app_dir(app),
                                                                    "cgroups")))]
        except (OSError, ValueError):
            return []


def timestamp_text(when: float | None = None) -> str:
    """A pod's timestamp file's text (`started`, `finished`...): `when`, or now."""
    return f"{time.time() if when is None else when:.6f}\n"


def write_atomic(path: StrPath, text: str | bytes) -> None:
    """A small file written whole or not at all: a temporary file beside it, then a rename."""
    PendingWrite(path).commit(text)


class PendingWrite:
    """A small file's atomic write begun ahead of its text (`write_atomic` does both at once):
    the temporary file is made now, so `commit` later costs only the text and a rename (the
    builtin holder's record of the pod's end: see stage1_builtin). A writer that dies before
    its commit leaves the temporary file, never a half-written one."""

    def __init__(self, path: StrPath) -> None:
        folder, name = os.path.split(path)
        self.path, self.temp = path, _join(folder, f".{name}.{os.getpid()}.tmp")
        self.fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                          0o666)

    def commit(self, text: str | bytes) -> None:
        # os-level: a buffered open() adds an fstat, an ioctl and an lseek, and its objects, to
        # each of the small files a run writes (its end among them: see stage1_builtin's finish)
        try:
            view = memoryview(text.encode() if isinstance(text, str) else text)
            while view:
                view = view[os.write(self.fd, view):]
        finally:
            os.close(self.fd)
        os.replace(self.temp, self.path)


def random_uuid() -> str:
    """A random (version 4) UUID, as str(uuid.uuid4()) writes it; the uuid module imports
    platform, ~1.5 ms of every `pyrkt run`."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def new_embryo(store_dir: StrPath) -> tuple[Pod, PodLock]:
    """Create a pod directory in `embryo/`, locked by the caller; returns the pod and its lock."""
    root = _ensure_layout(store_dir)
    pod_uuid = random_uuid()
    path = _join(root, "embryo", pod_uuid)
    os.mkdir(path, 0o750)
    lock = PodLock(path)
    lock.exclusive()
    pod = Pod(os.fspath(store_dir), pod_uuid, "embryo", path, True)
    pod.write_timestamp("created")
    return pod, lock


def iter_pods(store_dir: StrPath, prefix: str = "") -> Iterator[Pod]:
    """The pods on disk (those whose UUID starts with `prefix`: the others are not opened to
    test their lock, which would cost `pyrkt run` a descriptor and a flock per pod in the store)."""
    root, store = pods_root(store_dir), os.fspath(store_dir)
    for state_dir in STATE_DIRS:
        try:
            names = sorted(os.listdir(_join(root, state_dir)))
        except FileNotFoundError:
            continue
        for name in names:
            if name.startswith(".") or not name.startswith(prefix):
                continue
            path = _join(root, state_dir, name)
            yield Pod(store, name, state_dir, path, _is_locked(path))


def list_pods(store_dir: StrPath) -> list[Pod]:
    """All pods, oldest first (a pod caught mid-rename is listed once, in its new place)."""
    seen: dict[str, Pod] = {}
    for pod in iter_pods(store_dir):
        seen[pod.uuid] = pod
    return sorted(seen.values(), key=lambda p: (p.timestamp("created") or 0, p.uuid))


def find_pod(store_dir: StrPath, uuid_or_prefix: str) -> Pod:
    """The pod with this UUID or unambiguous UUID prefix; a rename in flight is retried."""
    wanted = uuid_or_prefix.strip().lower()
    if not wanted:
        raise PodNotFound("no pod UUID given")
    for _attempt in range(5):
        matches = {p.uuid: p for p in iter_pods(store_dir, wanted)}
        if len(matches) > 1:
            raise PodNotFound(f"UUID prefix {wanted} is ambiguous: it matches "
                              f"{', '.join(sorted(matches))}")
        if matches:
            pod = next(iter(matches.values()))
            if os.path.exists(pod.path):
                return pod
        else:
            break
    raise PodNotFound(f"no pod with UUID {wanted} in {pods_root(store_dir)}")


def remove_tree(path: StrPath) -> None:
    """Delete a pod directory; it is first renamed so a reader never sees it half-deleted."""
    folder, name = os.path.split(path)
    trash = _join(folder, f".deleting-{name}")
    try:
        os.rename(path, trash)
    except OSError as error:
        if error.errno == errno.ENOENT:
            return
        raise
    import shutil  # here: `pyrkt list` and `status` start without it (bz2, lzma: ~2 ms)

    shutil.rmtree(trash, ignore_errors=True)
