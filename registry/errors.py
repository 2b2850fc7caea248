"""The root of every error pyrkt raises on purpose: `PyrktError`.

Each part keeps its own errors in its own `errors.py` (`ACIError`, `SigningError`,
`DiscoveryError`, `ClientError`, `LauncherError`, `BuildError`, `DockerError`, the server's
`ServiceError`, `OciError`, `StorageError` and the settings' `ConfigError`), all under this class, so an entry
point catches `PyrktError` once and prints its message: every one is written to be shown to a
user as it is. Anything else reaching an entry point is a bug and keeps its traceback.

This module imports nothing, so the ground floor (`aci`, `discovery`, `signing`) may use it
without depending on anything above it.
"""


class PyrktError(Exception):
    """A failure pyrkt foresaw; `str(error)` is a complete sentence for the user."""
