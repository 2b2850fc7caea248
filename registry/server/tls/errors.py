"""Errors of the registry's HTTPS: each message is one line for the operator."""

from __future__ import annotations

from registry.errors import PyrktError


class TLSError(PyrktError):
    """The registry's HTTPS cannot be set up as asked."""


class CertificateError(TLSError, ValueError):
    """A certificate or key file the registry cannot use; the message says which and why."""


class ACMEError(TLSError):
    """No certificate from the ACME CA; str() is one line fit for a log and `tls status`."""


class ServeError(TLSError):
    """Serving over HTTPS cannot start."""
