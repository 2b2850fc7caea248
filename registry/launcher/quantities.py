"""Resource quantities as appc (and Kubernetes) write them: `500m` CPUs, `512M` or `1Gi` bytes."""

from __future__ import annotations

from .errors import LauncherError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from decimal import Decimal

# exact factors (strings for the fractional one): Decimal is imported when a quantity is
# parsed, not by every `pyrkt run` that has no limits (~1 ms)
_SUFFIXES: dict[str, int | str] = {
    "": 1, "m": "0.001",
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
CPU_EXAMPLES = "500m, 1, 2.5"  # CPUs; m: thousandths
MEMORY_EXAMPLES = "512M, 1Gi"  # bytes; M: 10^6, Mi: 2^20
_QUANTITY = r"^([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)$"  # compiled by re on first use (see options)


def parse_quantity(text: str, what: str, examples: str = "500m, 2, 512M, 1Gi") -> Decimal:
    # here: only --memory/--cpu and the resource isolators of an image need it; re (with enum)
    # costs ~4 ms of every start otherwise
    import re
    from decimal import Decimal, InvalidOperation

    match = re.match(_QUANTITY, str(text).strip())
    if not match or match.group(2) not in _SUFFIXES:
        raise LauncherError(f'{what}: "{text}" is not a quantity (examples: {examples})')
    try:
        return Decimal(match.group(1)) * Decimal(_SUFFIXES[match.group(2)])
    except InvalidOperation:
        raise LauncherError(f'{what}: "{text}" is not a quantity (examples: {examples})') from None


def memory_bytes(text: str, what: str = "memory") -> int:
    value = int(parse_quantity(text, what, MEMORY_EXAMPLES))
    if value < 4096:
        raise LauncherError(f'{what}: "{text}" is below one page; give e.g. 64M')
    return value


def cpu_millis(text: str, what: str = "cpu") -> int:
    value = int(parse_quantity(text, what, CPU_EXAMPLES) * 1000)
    if value < 1:
        raise LauncherError(f'{what}: "{text}" is less than 1m (a thousandth of a CPU)')
    return value
