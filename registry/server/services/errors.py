"""Errors the services raise; each maps to one HTTP status and a short machine-readable code.

The API turns them into JSON (`{"error": {"code": ..., "message": ...}}`), the web UI into a
flash message, the command line into a message on stderr: the wording is written once, here
or where raised.
"""

from __future__ import annotations

from registry.errors import PyrktError


class ServiceError(PyrktError):
    status = 400
    code = "bad-request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(ServiceError):
    status = 400
    code = "bad-request"


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    status = 404
    code = "not-found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class TooLarge(ServiceError):
    status = 413
    code = "too-large"
