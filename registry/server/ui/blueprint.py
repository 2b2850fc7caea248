"""The UI blueprint and how service errors become pages or flash messages."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, flash, jsonify, redirect, render_template, request
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.wrappers import Response as WsgiResponse

from registry.server.context import db_if_open
from registry.server.httputil import drain_request_body
from registry.server.outage import safe_rollback
from registry.server.services.errors import ServiceError

# Every UI-only URL lives under /_ui: `_` is not allowed in AC names, so no image name can
# collide with it. The repository pages themselves are served by the discovery route.
bp = Blueprint("ui", __name__, url_prefix="/_ui")

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def drain_body() -> None:
    if request.method not in SAFE_METHODS:
        drain_request_body()


def wants_json() -> bool:
    """The upload script asks for JSON; plain forms get pages and redirects."""
    return request.accept_mimetypes.best == "application/json"


def back_url(default: str = "/") -> str:
    """Where a form returns after an error: the page it was posted from (same site only)."""
    referrer = request.referrer
    if referrer:
        parts = urlsplit(referrer)
        # "//host/..." would leave the site: only plain paths on this host come back.
        if parts.netloc == request.host and parts.path.startswith("/") \
                and not parts.path.startswith("//"):
            return parts.path + (f"?{parts.query}" if parts.query else "")
    return default


def see_other(location: str) -> WsgiResponse:
    # 303: the browser follows with GET, so reloading the result never re-posts the form.
    return redirect(location, code=303)


@bp.errorhandler(ServiceError)
def _service_error(error: ServiceError) -> WsgiResponse | tuple[str, int] | tuple[WsgiResponse, int]:
    safe_rollback(db_if_open())
    drain_body()
    if wants_json():
        return jsonify({"ok": False, "code": error.code, "message": error.message}), error.status
    if request.method in SAFE_METHODS or error.status == 429:
        return render_template("ui/error.html", status=error.status,
                               message=error.message), error.status
    flash(error.message, "error")
    return see_other(back_url())


def register_error_pages(app: Flask) -> None:
    """Human 404 pages for browsers; API and appc clients keep the plain answers."""

    @app.errorhandler(NotFound)
    def _not_found(error: HTTPException) -> Response | HTTPException | tuple[str, int]:
        if request.path.startswith("/_api/") or request.accept_mimetypes.best != "text/html":
            return error
        return render_template("ui/error.html", status=404,
                               message="Nothing here — or nothing you may see."), 404


@bp.errorhandler(400)
@bp.errorhandler(403)
def _bad_request(error: HTTPException) -> tuple[Response, int] | tuple[str, int]:
    status = error.code or 400
    message = error.description or "bad request"
    if wants_json():
        code = "cross-site" if status == 403 else "bad-request"
        return jsonify({"ok": False, "code": code, "message": message}), status
    return render_template("ui/error.html", status=status, message=message), status
