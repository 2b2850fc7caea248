"""The registry's rules, called by the API, the web UI and the command line alike.

Modules: `actor` (who acts), `access` (who may do what), `users`, `tokens`, `repositories`
(versions, `latest`, roles), `keys` (signing keys), `upload` (publishing an ACI), `gc`,
`audit`. Each function takes a SQLAlchemy `Session` and an `Actor`, checks permissions itself,
commits its own change with one audit row, and raises `errors.ServiceError` subclasses that
carry an HTTP status and a machine-readable code.
"""

from .actor import Actor
from .errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceError,
    TooLarge,
    Unauthorized,
)

__all__ = [
    "Actor",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "ServiceError",
    "TooLarge",
    "Unauthorized",
]
