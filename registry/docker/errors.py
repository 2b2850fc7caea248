"""The one exception every docker2aci failure raises, with a short machine-readable reason."""

from __future__ import annotations

from registry.errors import PyrktError


class DockerError(PyrktError):
    """A Docker/OCI image could not be read, fetched or converted.

    `reason` is a short code callers and tests can match on: `bad-reference`, `not-found`,
    `unauthorized`, `insecure`, `digest-mismatch`, `too-large`, `path-traversal`,
    `bad-manifest`, `bad-layer`, `unsupported`, `no-platform`, `network`, `output`.
    `insecure_would_help` says that allowing plain HTTP or unverified TLS might get through;
    the command that caught the error names its own flag for that.
    """

    def __init__(self, message: str, *, reason: str = "invalid",
                 insecure_would_help: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.insecure_would_help = insecure_would_help

    def with_hint(self, flag: str) -> str:
        """The message, plus how to allow plain HTTP / self-signed TLS when that might help."""
        if not self.insecure_would_help:
            return str(self)
        return f"{self} (use {flag} for plain HTTP or self-signed TLS)"
