"""Errors the launcher reports to the user (the CLI prints the message and exits non-zero)."""

from __future__ import annotations

from registry.errors import PyrktError


class LauncherError(PyrktError):
    """A pod could not be prepared, run, found or changed; the message says why."""


class PodNotFound(LauncherError):
    """No pod matches the UUID (or UUID prefix) given."""
