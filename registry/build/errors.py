"""Errors of the builder. Each carries the exit status acbuild users script against."""

from __future__ import annotations

from registry.errors import PyrktError


class BuildError(PyrktError):
    """A build command failed; the message is what the user sees after the command name."""

    exit_code = 1


class NotFoundError(BuildError):
    """`... rm NAME` named something the image does not have (acbuild exits 2 for this)."""

    exit_code = 2

    def __init__(self, message: str = "element to be removed does not exist in this ACI") -> None:
        super().__init__(message)


class NoBuildInProgress(BuildError):
    def __init__(self) -> None:
        super().__init__('no build in progress in this working dir - try "acbuild begin"')


class BuildInProgress(BuildError):
    def __init__(self) -> None:
        super().__init__(
            "build already in progress in this working dir"
            ' - finish it with "acbuild end" before beginning another'
        )


class LockHeld(BuildError):
    def __init__(self) -> None:
        super().__init__("lock already held - is another acbuild running in this working dir?")
