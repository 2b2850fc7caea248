"""Linux capabilities of apps: rkt's default set, adjusted by the appc capability isolators.

An app running as root with every capability could leave its root (CAP_SYS_ADMIN mounts, raw
devices...), so before exec the bounding set is cut to the retained capabilities; exec then
limits even root to them.
"""

from __future__ import annotations

import os

from . import linux

TYPE_CHECKING = False
if TYPE_CHECKING:
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
RETAIN_SET, REMOVE_SET = "os/linux/capabilities-retain-set", "os/linux/capabilities-remove-set"


def retained(app_section: dict[str, Any]) -> frozenset[str]:
    """The capabilities an app keeps, after its retain-set / remove-set isolators."""
    keep = set(DEFAULT_RETAIN)
    for isolator in app_section.get("isolators") or []:
        if isolator.get("name") not in (RETAIN_SET, REMOVE_SET):
            continue
        value = isolator.get("value")
        items = value.get("set") if isinstance(value, dict) else None
        wanted = {str(c).upper() for c in items or []}
        if isolator.get("name") == RETAIN_SET:
            keep = wanted
        else:
            keep -= wanted
    return frozenset(keep)


def _last_capability() -> int:
    """The kernel's highest capability number (/proc/sys/kernel/cap_last_cap)."""
    try:
        fd = os.open("/proc/sys/kernel/cap_last_cap", os.O_RDONLY | os.O_CLOEXEC)
        try:
            return int(os.read(fd, 64))
        finally:
            os.close(fd)
    except (OSError, ValueError):
        return len(NAMES) - 1


# Read when the module loads, in the process that forks the apps: a kernel constant, and in a
# just-forked app the first buffered read of a file cost ~0.25 ms of its start.
LAST_CAPABILITY = _last_capability()


def limit_bounding_set(keep: frozenset[str]) -> None:
    """Drop every capability not in `keep` from the bounding set (needs CAP_SETPCAP: as root)."""
    for number in range(LAST_CAPABILITY + 1):
        name = NAMES[number] if number < len(NAMES) else f"CAP_{number}"
        if name in keep:
            continue
        linux.check(linux.libc.prctl(PR_CAPBSET_DROP, number, 0, 0, 0), f"cannot drop {name}")


PR_SET_NO_NEW_PRIVS = 38
NO_NEW_PRIVS_ISOLATOR = "os/linux/no-new-privileges"


def no_new_privileges(app_section: dict[str, Any]) -> bool:
    """appc's `os/linux/no-new-privileges` isolator (value true): setuid binaries and file
    capabilities then grant nothing across exec."""
    for isolator in app_section.get("isolators") or []:
        if isolator.get("name") == NO_NEW_PRIVS_ISOLATOR:
            return isolator.get("value") is True
    return False


def set_no_new_privs() -> None:
    linux.check(linux.libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "cannot set no_new_privs")


def check_names(names: list[str], flag: str) -> list[str]:
    """Upper-cased capability names; an unknown one is refused with the flag's name."""
    wanted = [name.strip().upper() for name in names if name.strip()]
    unknown = [name for name in wanted if name not in NAMES]
    if unknown:
        raise ValueError(f"{flag}: unknown capabilit{'ies' if len(unknown) > 1 else 'y'} "
                         f"{', '.join(unknown)} (names as in capabilities(7), e.g. "
                         f"CAP_NET_ADMIN)")
    if not wanted:
        raise ValueError(f"{flag}: give at least one capability, e.g. {flag}=CAP_NET_ADMIN")
    return wanted
