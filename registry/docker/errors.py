"""The one exception every docker2aci failure raises, with a short machine-readable reason."""

from __future__ import annotations


class DockerError(Exception):
    """A Docker/OCI image could not be read, fetched or converted.

    `reason` is a short code callers and tests can match on: `bad-reference`, `not-found`,
    `unauthorized`, `insecure`, `digest-mismatch`, `too-large`, `path-traversal`,
    `bad-manifest`, `bad-layer`, `unsupported`, `no-platform`, `network`, `output`.
    """

    def __init__(self, message: str, *, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason
