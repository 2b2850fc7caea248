"""The one error type of registry.signing, and a translator for pysequoia's errors."""

from __future__ import annotations

from registry.errors import PyrktError


class SigningError(PyrktError):
    """A key or signature could not be read, made or verified; the message says why."""


def sequoia_reason(error: BaseException) -> str:
    """The first line of a pysequoia error.

    pysequoia appends a Rust backtrace when RUST_BACKTRACE is set; users need only the cause.
    """
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
