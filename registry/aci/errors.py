"""The format core's errors: one base type, one for manifests, one for archives."""

from __future__ import annotations


class ACIError(Exception):
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
      not-tar, truncated, bad-compression, path-traversal, absolute-path, empty-name,
      duplicate-entry, missing-manifest, missing-rootfs, rootfs-not-directory,
      manifest-not-file, extra-entry, outside-rootfs, manifest-too-large, bomb, too-large,
      link-escape, device-node, unsupported-entry, dest-exists, extract-failed
    """

    reason = "invalid-archive"
