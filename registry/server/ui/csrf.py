"""CSRF protection for every state-changing UI request: a per-session token.

Forms carry the token in a hidden `csrf_token` field; the upload script sends it in the
`X-CSRF-Token` header (its body is the raw ACI). A missing or wrong token is refused with 400
before the view runs, so nothing changes. Before the token, the request's Origin (or Referer)
must name this registry (registry.server.headers.same_origin): 403 otherwise.
"""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session

from registry.server.context import config
from registry.server.headers import same_origin

from .blueprint import SAFE_METHODS, bp, drain_body

SESSION_KEY = "csrf_token"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"


def csrf_token() -> str:
    """The session's token, created on first use (templates call this for hidden fields)."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = session[SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def rotate_csrf_token() -> str:
    """A fresh token (after login and logout, so a token seen before does not carry over)."""
    session[SESSION_KEY] = secrets.token_urlsafe(32)
    return session[SESSION_KEY]


def _sent_token() -> str:
    header = request.headers.get(HEADER)
    if header:
        return header
    # Only form bodies are parsed here: a raw upload body must stay unread until the view
    # streams it into the upload service.
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return request.form.get(FORM_FIELD, "")
    return ""


@bp.before_request
def _check_csrf() -> None:
    if request.method in SAFE_METHODS:
        return
    # First the origin (registry.server.headers): only this registry's own pages may change
    # anything, whatever token a request carries.
    refused = same_origin(request, config().base_url)
    if refused is not None:
        drain_body()
        abort(403, description=f"cross-site request refused: {refused}; use the registry's "
                               "own pages")
    expected = session.get(SESSION_KEY)
    sent = _sent_token()
    if not isinstance(expected, str) or not expected or not sent or not hmac.compare_digest(
        sent.encode(), expected.encode()
    ):
        drain_body()
        abort(400, description="missing or invalid CSRF token: reload the page and try again")
