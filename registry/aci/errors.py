"""The format core's errors: one base type, one for manifests, one for archives."""

from __future__ import annotations

from registry.errors import PyrktError


class ACIError(PyrktError):
    """Base of every ACI format error. `reason` is a short machine-readable code."""

    reason: str = "invalid-aci"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class ManifestError(ACIError):
    """An image or pod manifest breaks a rule; the message names the field and the rule,
    e.g. `labels: bad arch "x86_64" for os "linux"`."""

    reason = "invalid-manifest"


class ArchiveError(ACIError):
    """The archive itself is unacceptable: layout, tar structure, compression or limits.

    Reason codes (stable, for callers and tests):
      stream:      empty, not-tar, truncated, bad-compression, bad-header, too-large, bomb
      layout:      missing-manifest, missing-rootfs, manifest-not-file, rootfs-not-directory,
                   manifest-too-large, extra-entry, duplicate-entry, bad-parent,
                   unsupported-entry
      safety:      path-traversal, absolute-path, link-escape, bad-link, device-node
      extraction:  dest-exists, extract-failed
    ManifestError uses invalid-json and invalid-manifest; plain ACIError from write_aci uses
    bad-rootfs, bad-compression and bad-environment.
    """

    reason = "invalid-archive"
