"""Errors raised by the blob storage backends; every one is a `StorageError`."""

from __future__ import annotations

from registry.errors import PyrktError


class StorageError(PyrktError):
    """Base of every storage failure; the message is meant for an operator or an API error."""


class StorageConfigError(StorageError):
    """The storage configuration is wrong: unknown backend, missing bucket, bad credentials."""


class StorageUnavailable(StorageError):
    """The backend cannot be reached (endpoint down, network error, timeout)."""


class BlobNotFound(StorageError, KeyError):
    """No committed blob under this key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"no blob stored under {self.key!r}"


class InvalidKey(StorageError, ValueError):
    """A key that is not a plain relative path of safe segments (or a bad digest)."""


class InvalidRange(StorageError, ValueError):
    """A byte range outside the blob (start beyond its size, end before start)."""


class KeyConflict(StorageError):
    """A commit to a key that already holds different content (keys are content-addressed)."""


class UploadClosed(StorageError):
    """A write, read-back or commit on an upload that was already committed or aborted."""
