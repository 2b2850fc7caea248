"""Resource limits: the one rule from an app's isolators to what enforces them, in both flavours.

appc's `resource/memory` and `resource/cpu` isolators (`--memory`, `--cpu`; the limit wins over
the request) become, for each app:

    what            cgroup v2 file (builtin)   cgroup v1 file (builtin)      systemd property
    memory M bytes  memory.max = M             memory.limit_in_bytes = M     MemoryMax=M
    no swap escape  memory.swap.max = 0        memory.memsw.limit_in_bytes=M MemorySwapMax=0
    cpu C millis    cpu.max = "Q P"            cpu.cfs_quota_us = Q,         CPUQuota=C/10 %
                                               cpu.cfs_period_us = P         (CPUQuotaPeriodSec=P)

with Q/P = C/1000 (P = 100 ms, the kernel's and systemd's default period; a quota under the
kernel's 1 ms minimum lengthens the period instead, so `--cpu=1m` still means 1/1000 of a CPU).
The swap line matters: without it a memory limit on a host with swap only moves the app's
pages to swap, and the app is never OOM-killed.

A limit the host cannot enforce is never dropped silently: `plan` checks the host before the pod
starts (the flavour's way: the cgroup files pyrkt writes, or the controllers systemd writes) and
raises a LauncherError naming the limit, the reason and the way out, or, with
`--insecure-options=limits`, warns and leaves that limit out. What a stage1 must apply is then
`enforced(pod)`, recorded in `<pod>/limits.json` (so `pyrkt status` and a later reader see what
was really in force).
"""

from __future__ import annotations

import os

from registry import jsontext, records  # (records: this module's own `record` writes limits)

from .errors import LauncherError
from .pods import Pod, read_text, write_atomic
from .quantities import cpu_millis, memory_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

CGROUP_ROOT = "/sys/fs/cgroup"  # (a str: see cgroups)
CPU_PERIOD_US = 100_000  # the kernel's and systemd's default CFS period
MIN_QUOTA_US = 1_000  # the kernel refuses a smaller cfs quota (EINVAL)
MAX_PERIOD_US = 1_000_000  # ... and a longer period
INSECURE_OPTION = "limits"
LIMITS_FILE = "limits.json"
STAGE1_MEMORY_ALLOWANCE = 64 * 2**20  # the pod's own processes, above its apps' limits


@records.record(frozen=True)
class Limits:
    """An app's (or a pod's) limits; None: unlimited."""

    memory: int | None = None  # bytes
    cpu_millis: int | None = None  # thousandths of a CPU

    def __bool__(self) -> bool:
        return self.memory is not None or self.cpu_millis is not None

    def to_json(self) -> dict[str, int | None]:
        return {"memory": self.memory, "cpuMillis": self.cpu_millis}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Limits:
        return cls(data.get("memory"), data.get("cpuMillis"))


def of_app(app: dict[str, Any]) -> Limits:
    """The limits of a pod manifest's app entry, from its resource isolators."""
    memory = cpu = None
    for isolator in app["app"].get("isolators") or []:
        value = isolator.get("value")
        if not isinstance(value, dict):  # e.g. os/linux/no-new-privileges: true
            continue
        amount = value.get("limit") or value.get("request")
        if amount is None:
            continue
        if isolator.get("name") == "resource/memory":
            memory = memory_bytes(str(amount))
        elif isolator.get("name") == "resource/cpu":
            cpu = cpu_millis(str(amount))
    return Limits(memory, cpu)


def pod_limits(per_app: Iterable[Limits]) -> Limits:
    """The pod's ceiling (its unit, or its cgroup above the apps'): for a resource every app is
    limited in, the sum of the apps' limits, plus STAGE1_MEMORY_ALLOWANCE for the pod's own
    processes (its init, or systemd and journald), whose memory counts against the pod too; an
    unlimited app leaves the pod unlimited in that resource. So it never binds before an app's
    own limit: an app over its limit is killed as that app, never as "the pod"."""
    apps = list(per_app)
    if not apps:
        return Limits()
    memory = cpu = None
    if all(a.memory is not None for a in apps):
        memory = sum(a.memory or 0 for a in apps) + STAGE1_MEMORY_ALLOWANCE
    if all(a.cpu_millis is not None for a in apps):
        cpu = sum(a.cpu_millis or 0 for a in apps)
    return Limits(memory, cpu)


def cpu_quota(millis: int) -> tuple[int, int]:
    """(quota, period) in microseconds for `millis` thousandths of a CPU."""
    quota = millis * CPU_PERIOD_US // 1000
    if quota >= MIN_QUOTA_US:
        return quota, CPU_PERIOD_US
    # below 10m: the smallest quota over a longer period (1m: 1 ms per second)
    return MIN_QUOTA_US, min(MAX_PERIOD_US, MIN_QUOTA_US * 1000 // millis)


def v2_files(limits: Limits) -> list[tuple[str, str]]:
    """(file, value) pairs for an app's cgroup v2 directory, in the order to write them."""
    files: list[tuple[str, str]] = []
    if limits.memory is not None:
        files += [("memory.max", str(limits.memory)), ("memory.swap.max", "0"),
                  # an OOM kills the whole app, not one of its processes chosen by size
                  ("memory.oom.group", "1")]
    if limits.cpu_millis is not None:
        quota, period = cpu_quota(limits.cpu_millis)
        files.append(("cpu.max", f"{quota} {period}"))
    return files


def v1_files(limits: Limits) -> list[tuple[str, str, str]]:
    """(controller, file, value) for an app's cgroup v1 directories, in the order to write them
    (the period before the quota: a quota is checked against the period in force)."""
    files: list[tuple[str, str, str]] = []
    if limits.memory is not None:
        files += [("memory", "memory.limit_in_bytes", str(limits.memory)),
                  ("memory", "memory.memsw.limit_in_bytes", str(limits.memory))]
    if limits.cpu_millis is not None:
        quota, period = cpu_quota(limits.cpu_millis)
        files += [("cpu", "cpu.cfs_period_us", str(period)), ("cpu", "cpu.cfs_quota_us", str(quota))]
    return files


# files that only exist with an optional kernel feature (swap accounting, oom groups): absent
# means "nothing to escape into" or "not needed", never a reason to refuse the limit
OPTIONAL_FILES = ("memory.swap.max", "memory.memsw.limit_in_bytes", "memory.oom.group")


def systemd_properties(limits: Limits) -> list[str]:
    """The unit properties (`NAME=VALUE`) that enforce `limits` under systemd."""
    properties: list[str] = []
    if limits.memory is not None:
        properties += [f"MemoryMax={limits.memory}", "MemorySwapMax=0"]
    if limits.cpu_millis is not None:
        quota, period = cpu_quota(limits.cpu_millis)
        # systemd's CPUQuota: percent of one CPU (two decimals at most), whatever the period
        percent = f"{limits.cpu_millis / 10:.2f}".rstrip("0").rstrip(".")
        properties.append(f"CPUQuota={percent}%")
        if period != CPU_PERIOD_US:
            properties.append(f"CPUQuotaPeriodSec={period // 1000}ms")
    return properties


# -- can the host enforce them? ------------------------------------------------------------------

def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, options) of the cgroup file systems we can see."""
    found = []
    try:
        with open("/proc/self/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) >= 4 and fields[2] in ("cgroup", "cgroup2"):
                    found.append((fields[1].replace("\\040", " "), fields[2],
                                  set(fields[3].split(","))))
    except OSError:
        pass
    return found


def host_problem(resource: str) -> str | None:
    """Why this host cannot enforce a `resource` ("memory" or "cpu") limit; None if it can.

    The rule is the same for both flavours, since systemd writes the same files pyrkt does:
    cgroup v2 at /sys/fs/cgroup (the unified host of every current distribution) needs the
    controller among the ones delegated to us (`cgroup.controllers`) and a writable mount;
    cgroup v1 needs the controller's own hierarchy, mounted writable (a container that got its
    hierarchies read-only, as systemd-nspawn gives them, cannot set any limit).
    """
    controller = resource  # the controllers are named as the resources
    mounts = _mounts()
    controllers = os.path.join(CGROUP_ROOT, "cgroup.controllers")
    if os.path.exists(controllers):
        try:
            with open(controllers) as handle:
                available = handle.read().split()
        except OSError as error:
            return f"{CGROUP_ROOT}/cgroup.controllers cannot be read ({error.strerror})"
        if controller not in available:
            return (f"the cgroup v2 {controller} controller is not available here (not in "
                    f"{CGROUP_ROOT}/cgroup.controllers: the host did not delegate it)")
        unified = [options for point, kind, options in mounts
                   if kind == "cgroup2" and point == CGROUP_ROOT]
        if unified and "ro" in unified[-1]:
            return f"{CGROUP_ROOT} is mounted read-only"
        if not os.access(CGROUP_ROOT, os.W_OK):
            return f"{CGROUP_ROOT} is not writable by this user"
        return None
    hierarchy = [(point, options) for point, kind, options in mounts
                 if kind == "cgroup" and controller in options]
    if not hierarchy:
        return f"no cgroup v1 hierarchy has the {controller} controller mounted"
    point, options = hierarchy[-1]
    if "ro" in options:
        return (f"its cgroup v1 hierarchy {point} is mounted read-only (a container that was "
                f"not given its cgroups)")
    if not os.access(point, os.W_OK):
        return f"its cgroup v1 hierarchy {point} is not writable by this user"
    return None


def _flag(resource: str, limits: Limits) -> str:
    """The limit as the user would write it (the manifest keeps bytes and millis)."""
    if resource == "cpu":
        return f"--cpu={limits.cpu_millis}m"
    memory = limits.memory or 0
    for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("G", 10**9), ("M", 10**6)):
        if memory % size == 0:
            return f"--memory={memory // size}{unit}"
    return f"--memory={memory}"


def plan(apps: list[dict[str, Any]], insecure: Iterable[str],
         warn: Callable[[str], None], *,
         problem: Callable[[str], str | None] = host_problem) -> dict[str, Limits]:
    """What to enforce, per app: every limit asked for, or LauncherError before anything starts.

    With `limits` among the insecure options, a limit the host cannot enforce is left out with
    a warning instead.
    """
    allowed = INSECURE_OPTION in set(insecure)
    result: dict[str, Limits] = {}
    problems: dict[str, str | None] = {}
    for app in apps:
        asked = of_app(app)
        keep = {"memory": asked.memory, "cpu": asked.cpu_millis}
        for resource, value in list(keep.items()):
            if value is None:
                continue
            if resource not in problems:
                problems[resource] = problem(resource)
            reason = problems[resource]
            if reason is None:
                continue
            flag = _flag(resource, asked)
            if not allowed:
                raise LauncherError(
                    f"{flag} (app {app['name']}) cannot be enforced: {reason}; run the pod "
                    f"where cgroups are delegated, drop {flag.split('=')[0]}, or pass "
                    f"--insecure-options={INSECURE_OPTION} to run it unlimited")
            warn(f"{flag} (app {app['name']}) is NOT enforced: {reason} "
                 f"(--insecure-options={INSECURE_OPTION})")
            keep[resource] = None
        result[app["name"]] = Limits(keep["memory"], keep["cpu"])
    return result


def record(pod: Pod, per_app: dict[str, Limits]) -> None:
    # compact: read by pyrkt (`enforced`), not by people; indented text would load json
    write_atomic(os.path.join(pod.path, LIMITS_FILE),
                 jsontext.dumps({name: lim.to_json() for name, lim in per_app.items()},
                                compact=True))


def enforced(pod: Pod) -> dict[str, Limits]:
    """The limits a stage1 applies, per app: those `plan` kept (recorded in the pod), or, for a
    pod started before they were recorded, those of its manifest."""
    apps = pod.manifest()["apps"]
    try:
        data = jsontext.loads(read_text(os.path.join(pod.path, LIMITS_FILE)))
        return {app["name"]: Limits.from_json(data.get(app["name"]) or {}) for app in apps}
    except (OSError, ValueError):
        return {app["name"]: of_app(app) for app in apps}
