"""Deleting stored objects nothing refers to (the sweep half of both garbage collectors)."""

from __future__ import annotations

from collections.abc import Container
from datetime import datetime

from .base import BlobStorage
from .errors import BlobNotFound


def sweep_unreferenced(storage: BlobStorage, prefix: str, referenced: Container[str],
                       cutoff: datetime, *, dry_run: bool = False) -> list[str]:
    """Delete the keys under `prefix` not in `referenced` and last written before `cutoff`
    (a younger object may belong to a write whose rows are being committed right now).
    Returns the keys removed (or, with `dry_run`, that would be)."""
    removed: list[str] = []
    for key in list(storage.iter_keys(prefix)):
        if key in referenced:
            continue
        try:
            if storage.stat(key).mtime > cutoff:
                continue
        except BlobNotFound:
            continue
        removed.append(key)
        if not dry_run:
            storage.delete(key)
    return removed
