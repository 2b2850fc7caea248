"""Linux capabilities of apps: rkt's default set, adjusted by the appc capability isolators.

An app running as root with every capability could leave its root (CAP_SYS_ADMIN mounts, raw
devices...), so before exec the bounding set is cut to the retained capabilities; exec then
limits even root to them.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]
# rkt's default retained set (the same as Docker's): no SYS_ADMIN, SYS_MODULE, SYS_RAWIO...
DEFAULT_RETAIN = frozenset({
    "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_KILL",
    "CAP_MKNOD", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID",
    "CAP_SETPCAP", "CAP_SETFCAP", "CAP_SYS_CHROOT",
})
PR_CAPBSET_DROP = 24


def retained(app_section: dict[str, Any]) -> frozenset[str]:
    """The capabilities an app keeps, after its retain-set / remove-set isolators."""
    keep = set(DEFAULT_RETAIN)
    for isolator in app_section.get("isolators") or []:
        wanted = {str(c).upper() for c in (isolator.get("value") or {}).get("set") or []}
        if isolator.get("name") == "os/linux/capabilities-retain-set":
            keep = wanted
        elif isolator.get("name") == "os/linux/capabilities-remove-set":
            keep -= wanted
    return frozenset(keep)


def limit_bounding_set(keep: frozenset[str]) -> None:
    """Drop every capability not in `keep` from the bounding set (needs CAP_SETPCAP: as root)."""
    libc = ctypes.CDLL(None, use_errno=True)  # the running C library (see linux._libc)
    try:
        last = int(open("/proc/sys/kernel/cap_last_cap").read())
    except (OSError, ValueError):
        last = len(NAMES) - 1
    for number in range(last + 1):
        name = NAMES[number] if number < len(NAMES) else f"CAP_{number}"
        if name in keep:
            continue
        if libc.prctl(PR_CAPBSET_DROP, number, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"cannot drop {name}: {os.strerror(err)}")
