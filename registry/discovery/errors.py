"""Errors of registry.discovery."""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry.errors import PyrktError

if TYPE_CHECKING:
    from .client import Attempt


class DiscoveryError(PyrktError):
    """Discovery failed; `.attempts` records every URL tried and what it answered."""

    def __init__(self, message: str, attempts: list[Attempt] | None = None) -> None:
        super().__init__(message)
        self.attempts: list[Attempt] = list(attempts or [])


class AppStringError(DiscoveryError, ValueError):
    """An app string (`name[:version][,label=value...]`) or a name/label in it is malformed."""
