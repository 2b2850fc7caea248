"""Backend outages answered as outages: 503 with Retry-After, in each protocol's own format.

When PostgreSQL stops, or the S3 server is killed, frozen or comes back without its bucket,
every request that needs it fails with a database or storage exception. Those are not bugs
of the request: the client should wait and retry. One rule, here, for every blueprint:

- `is_outage(error)` says whether an exception means "a backend is unavailable";
- `outage_response(error)` is the 503 (JSON for /_api/ and /v2/, a small page for browsers,
  text otherwise) with `Retry-After`;
- `ShieldMiddleware` catches what escapes Flask itself (an error inside an error handler or a
  teardown, e.g. a rollback on a connection the server killed), so no client ever sees the
  WSGI server's bare 500 page;
- `safe_rollback(session)` ends a transaction whose connection may already be dead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from html import escape
from typing import Any

from flask import Flask, Response, request
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    PendingRollbackError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from registry.server.context import db_if_open
from registry.server.headers import security_headers
from registry.server.httputil import BODY_METHODS, drain_request_body
from registry.server.services.throttle import Throttled
from registry.server.storage import (
    BlobNotFound,
    InvalidKey,
    InvalidRange,
    KeyConflict,
    StorageError,
)

log = logging.getLogger("registry.server.outage")

DEFAULT_RETRY_AFTER = 5
_STORAGE_NOT_OUTAGES = (BlobNotFound, InvalidKey, InvalidRange, KeyConflict)


def is_outage(error: BaseException) -> bool:
    """True for failures of the database or the blob storage (not of the request)."""
    if isinstance(error, OperationalError | InterfaceError | DisconnectionError | PoolTimeout
                  | PendingRollbackError):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, StorageError) and not isinstance(error, _STORAGE_NOT_OUTAGES)


def describe(error: BaseException) -> str:
    """One line naming the backend for the client: never a traceback, a connection string or
    an internal address (those go to the server's log)."""
    if isinstance(error, SQLAlchemyError):
        return "the database is unavailable"
    return "blob storage is unavailable"


def safe_rollback(session: Session | None) -> None:
    """Roll back; if the connection is dead, drop it from the pool instead of raising."""
    if session is None:
        return
    try:
        session.rollback()
    except SQLAlchemyError:
        try:
            session.invalidate()
        except SQLAlchemyError:
            pass


def outage_body(path: str, accept_html: bool, message: str, *,
                status: str = "503 Service Unavailable") -> tuple[bytes, str]:
    """The body and content type of a 503 (or, from the shield, a 500) for `path`."""
    unavailable = status.startswith("503")
    if path.startswith("/v2"):
        code = "UNAVAILABLE" if unavailable else "UNKNOWN"
        return (json.dumps({"errors": [{"code": code, "message": message}]}).encode(),
                "application/json")
    if path.startswith("/_api/"):
        code = "unavailable" if unavailable else "internal-error"
        return (json.dumps({"error": {"code": code, "message": message}}).encode(),
                "application/json")
    if path == "/_health":
        return json.dumps({"ok": False, "problems": [message]}).encode(), "application/json"
    hint = "; please try again in a few seconds" if unavailable else ""
    if accept_html:
        page = (f"<!doctype html><html lang=en><meta charset=utf-8><title>{status}</title>"
                f"<h1>{escape(status[4:])}</h1><p>{escape(message)}{hint}.</p></html>")
        return page.encode(), "text/html; charset=utf-8"
    return f"{status}: {message}{hint}\n".encode(), "text/plain; charset=utf-8"


def outage_response(error: BaseException, retry_after: int = DEFAULT_RETRY_AFTER) -> Response:
    safe_rollback(db_if_open())
    if request.method in BODY_METHODS:
        drain_request_body()
    message = describe(error)
    log.warning("503 for %s %s: %s (%s: %s)", request.method, request.path, message,
                error.__class__.__name__, str(error).splitlines()[0] if str(error) else "")
    body, mimetype = outage_body(request.path, request.accept_mimetypes.best == "text/html",
                                 message)
    response = Response(body, status=503, content_type=mimetype)
    response.headers["Retry-After"] = str(retry_after)
    response.headers["Cache-Control"] = "no-store"
    return response


def register(app: Flask, retry_after: int = DEFAULT_RETRY_AFTER) -> None:
    """App-wide handlers: blueprint handlers for their own errors still run first."""

    def handler(error: Exception) -> Response:
        if not is_outage(error):
            raise error
        return outage_response(error, retry_after)

    for kind in (SQLAlchemyError, StorageError):
        app.register_error_handler(kind, handler)

    def stalled(error: Exception) -> Response:
        # The worker's progress deadline (a body that stopped arriving) or a client that hung
        # up mid-body: the request is over, not the server; nothing was stored (uploads spool
        # to a temporary that is dropped), and the answer is 408, never a 500.
        safe_rollback(db_if_open())
        message = "the request body stopped arriving; send it again"
        body, mimetype = outage_body(request.path, request.accept_mimetypes.best == "text/html",
                                     message, status="408 Request Timeout")
        response = Response(body, status=408, content_type=mimetype)
        response.headers["Connection"] = "close"
        return response

    for cut_off in (TimeoutError, ConnectionError):
        app.register_error_handler(cut_off, stalled)

    def throttled(error: Throttled) -> Response:
        # Pages and downloads with wrong Basic credentials (blueprints without their own
        # ServiceError handler): the brute-force delay, in plain words.
        safe_rollback(db_if_open())
        response = Response(f"429 Too Many Requests: {error.message}\n", status=429,
                            content_type="text/plain; charset=utf-8")
        response.headers["Retry-After"] = str(error.retry_after)
        return response

    app.register_error_handler(Throttled, throttled)


class ShieldMiddleware:
    """Outermost WSGI layer: an exception that escapes Flask before the response started
    becomes a 503 (backend outage) or a plain 500 in the protocol's format."""

    def __init__(self, app: Callable[..., Iterable[bytes]],
                 retry_after: int = DEFAULT_RETRY_AFTER) -> None:
        self.app = app
        self.retry_after = retry_after

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = False

        def tracking_start_response(status: str, headers: list[tuple[str, str]],
                                    exc_info: Any = None) -> Any:
            nonlocal started
            started = True
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, tracking_start_response)
        except Exception as error:
            if started:
                raise
            path = environ.get("PATH_INFO", "")
            html = "text/html" in environ.get("HTTP_ACCEPT", "")
            headers: list[tuple[str, str]] = []
            if is_outage(error):
                status, message = "503 Service Unavailable", describe(error)
                headers.append(("Retry-After", str(self.retry_after)))
            else:
                log.exception("unhandled error for %s", path)
                status, message = "500 Internal Server Error", "internal error (logged)"
            body, mimetype = outage_body(path, html, message, status=status)
            headers += [("Content-Type", mimetype), ("Content-Length", str(len(body))),
                        ("Cache-Control", "no-store"), *security_headers(mimetype).items()]
            start_response(status, headers)
            return [body]
