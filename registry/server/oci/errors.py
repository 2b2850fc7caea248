"""OCI distribution errors: `{"errors": [{"code", "message", "detail"}]}` with the HTTP status
the distribution spec gives each code."""

from __future__ import annotations

from typing import Any

from registry.errors import PyrktError


class OciError(PyrktError):
    status = 400
    code = "UNSUPPORTED"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 detail: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.detail = detail
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return {"errors": [error]}


def blob_unknown(digest: str) -> OciError:
    return OciError(f"blob {digest} is not in this repository", status=404, code="BLOB_UNKNOWN")


def manifest_unknown(reference: str) -> OciError:
    return OciError(f"manifest {reference!r} is not in this repository", status=404,
                    code="MANIFEST_UNKNOWN")


def name_unknown(name: str) -> OciError:
    return OciError(f"repository {name!r} is not known to this registry", status=404,
                    code="NAME_UNKNOWN")


def upload_unknown(uuid: str) -> OciError:
    return OciError(f"blob upload {uuid!r} is unknown, finished or cancelled", status=404,
                    code="BLOB_UPLOAD_UNKNOWN")


def digest_invalid(message: str) -> OciError:
    return OciError(message, status=400, code="DIGEST_INVALID")


def denied(message: str) -> OciError:
    return OciError(message, status=403, code="DENIED")
