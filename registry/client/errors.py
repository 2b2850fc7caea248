"""The client's errors: one base class, one subclass per concern, messages written for users."""

from __future__ import annotations

from registry.errors import PyrktError


class ClientError(PyrktError):
    """Base of every error the client raises; the message is meant to be shown as is."""


class ClientConfigError(ClientError):
    """A configuration file or flag is malformed."""


class StoreError(ClientError):
    """The local image store cannot do what was asked."""


class ImageNotFound(StoreError):
    """No stored image matches an ID, ID prefix or name."""


class TrustError(ClientError):
    """A key cannot be trusted, found or removed."""


class FetchError(ClientError):
    """An image could not be fetched, verified or imported; the store is left unchanged."""
