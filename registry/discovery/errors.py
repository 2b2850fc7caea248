"""Errors of registry.discovery."""

from __future__ import annotations

from dataclasses import dataclass

from registry.errors import PyrktError


@dataclass(frozen=True)
class Attempt:
    """One page asked during discovery and what came of it (errors carry the list of them)."""

    url: str
    outcome: str  # e.g. "HTTP 404", "no matching ac-discovery tag", "TLS error: ..."
    ok: bool = False
    unreachable: bool = False  # no HTTP answer at all (connection or TLS error)


class DiscoveryError(PyrktError):
    """Discovery failed; `.attempts` records every URL tried and what it answered."""

    def __init__(self, message: str, attempts: list[Attempt] | None = None) -> None:
        super().__init__(message)
        self.attempts: list[Attempt] = list(attempts or [])


class AppStringError(DiscoveryError, ValueError):
    """An app string (`name[:version][,label=value...]`) or a name/label in it is malformed."""
