"""Isolator value rules (appc schema/types/isolator_*.go): which names exist, what their values
look like, which may repeat and which conflict."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from registry.aci.errors import ManifestError
from registry.aci.fields import as_object
from registry.aci.names import parse_quantity

CPU = "resource/cpu"
MEMORY = "resource/memory"
BLOCK_BANDWIDTH = "resource/block-bandwidth"
BLOCK_IOPS = "resource/block-iops"
NETWORK_BANDWIDTH = "resource/network-bandwidth"
CAPABILITIES_RETAIN = "os/linux/capabilities-retain-set"
CAPABILITIES_REMOVE = "os/linux/capabilities-remove-set"
NO_NEW_PRIVILEGES = "os/linux/no-new-privileges"
SECCOMP_RETAIN = "os/linux/seccomp-retain-set"
SECCOMP_REMOVE = "os/linux/seccomp-remove-set"
SELINUX_CONTEXT = "os/linux/selinux-context"
OOM_SCORE_ADJ = "os/linux/oom-score-adj"
CPU_SHARES = "os/linux/cpu-shares"
SYSCTL = "os/unix/sysctl"

# At most one of each of these per isolator list.
SINGLE_INSTANCE = frozenset({SECCOMP_RETAIN, SECCOMP_REMOVE, SYSCTL, SELINUX_CONTEXT,
                             OOM_SCORE_ADJ, CPU_SHARES})
CONFLICTS = {
    CAPABILITIES_RETAIN: CAPABILITIES_REMOVE, CAPABILITIES_REMOVE: CAPABILITIES_RETAIN,
    SECCOMP_RETAIN: SECCOMP_REMOVE, SECCOMP_REMOVE: SECCOMP_RETAIN,
}


def _object(value: Any, field: str) -> dict[str, Any]:
    return as_object(value, field)


def _resource(value: Any, field: str, *, default_required: bool, request_allowed: bool) -> None:
    body = _object(value, field)
    default = body.get("default", False)
    if not isinstance(default, bool):
        raise ManifestError(f"{field}.default: must be a boolean")
    if default_required and not default:
        raise ManifestError(f"{field}.default: must be true")
    if not default_required and default:
        raise ManifestError(f"{field}.default: must be false")
    if not request_allowed and body.get("request") is not None:
        raise ManifestError(f"{field}.request: not supported by this resource, must be empty")
    # appc accepts a request above the limit (isolator_test.go does); runtimes clamp it.
    for key in ("request", "limit"):
        if body.get(key) is not None and parse_quantity(body[key], f"{field}.{key}") < 0:
            raise ManifestError(f"{field}.{key}: must not be negative")


def _cpu_or_memory(value: Any, field: str) -> None:
    _resource(value, field, default_required=False, request_allowed=True)


def _io_resource(value: Any, field: str) -> None:
    _resource(value, field, default_required=True, request_allowed=False)


def _string_set(value: Any, field: str) -> list[str]:
    body = _object(value, field)
    members = body.get("set")
    if not isinstance(members, list) or not members:
        raise ManifestError(f"{field}.set: must be a non-empty list")
    for index, member in enumerate(members):
        if not isinstance(member, str) or not member:
            raise ManifestError(f"{field}.set[{index}]: must be a non-empty string")
    return members


def _capabilities(value: Any, field: str) -> None:
    _string_set(value, field)


def _seccomp(value: Any, field: str) -> None:
    _string_set(value, field)
    errno = _object(value, field).get("errno") or ""
    if not isinstance(errno, str):
        raise ManifestError(f"{field}.errno: must be a string")
    if errno and (not errno.startswith("E")
                  or not all(c.isupper() or c.isdigit() for c in errno)):
        raise ManifestError(
            f"{field}.errno: {errno!r} must start with E and hold only upper case letters or digits")


def _boolean(value: Any, field: str) -> None:
    if not isinstance(value, bool):
        raise ManifestError(f"{field}: must be a boolean")


def _integer_in(low: int, high: int) -> Callable[[Any, str], None]:
    def check(value: Any, field: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ManifestError(f"{field}: must be an integer between {low} and {high}")
    return check


def _selinux(value: Any, field: str) -> None:
    body = _object(value, field)
    for key in ("user", "role", "type", "level"):
        part = body.get(key)
        if not isinstance(part, str) or not part or (key != "level" and ":" in part):
            raise ManifestError(f"{field}.{key}: invalid {key} value {part!r}")


def _sysctl(value: Any, field: str) -> None:
    body = _object(value, field)
    for key, item in body.items():
        if not isinstance(item, str):
            raise ManifestError(f"{field}.{key}: must be a string")


VALUE_RULES: dict[str, Callable[[Any, str], None]] = {
    CPU: _cpu_or_memory, MEMORY: _cpu_or_memory,
    BLOCK_BANDWIDTH: _io_resource, BLOCK_IOPS: _io_resource, NETWORK_BANDWIDTH: _io_resource,
    CAPABILITIES_RETAIN: _capabilities, CAPABILITIES_REMOVE: _capabilities,
    NO_NEW_PRIVILEGES: _boolean,
    SECCOMP_RETAIN: _seccomp, SECCOMP_REMOVE: _seccomp,
    SELINUX_CONTEXT: _selinux,
    OOM_SCORE_ADJ: _integer_in(-1000, 1000),
    CPU_SHARES: _integer_in(2, 262144),
    SYSCTL: _sysctl,
}


def check_isolator_value(name: str, value: Any, field: str) -> None:
    rule = VALUE_RULES.get(name)
    if rule is None:
        raise ManifestError(
            f"{field}.name: unknown isolator {name!r} (known: {', '.join(sorted(VALUE_RULES))})")
    rule(value, f"{field}.value")


def check_isolator_set(names: Sequence[str], field: str) -> None:
    """Single-instance types appear once; conflicting types never together."""
    seen: set[str] = set()
    for name in names:
        if name in seen and name in SINGLE_INSTANCE:
            raise ManifestError(f"{field}: too many isolators of type {name}")
        partner = CONFLICTS.get(name)
        if partner in seen:
            raise ManifestError(f"{field}: {name} conflicts with {partner}")
        seen.add(name)
