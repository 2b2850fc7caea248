"""The web UI: browsing pages, session login, CSRF-protected admin forms (all via services)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface

from registry.server.services.tokens import state_of

from . import accounts, admin, browse, operations, repositories, uploads  # noqa: F401 - they add routes
from .blueprint import bp, register_error_pages
from .csrf import csrf_token
from .formatting import register_filters
from .sessions import current_user
from .urls import home_url, repository_url


def init_app(app: Flask) -> None:
    """Register the UI on the registry app (called by the app factory)."""
    base_url = app.extensions["pyrkt"].config.base_url
    app.config.update(
        SESSION_COOKIE_NAME="pyrkt_session",
        SESSION_COOKIE_HTTPONLY=True,
        # Lax: the cookie rides along on top-level navigation but not on cross-site POSTs.
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=urlsplit(base_url).scheme == "https",
    )
    app.session_interface = _SessionCookies()
    app.register_blueprint(bp)
    register_filters(app)
    register_error_pages(app)
    # Globals rather than a context processor: imported macros (ui/macros.html) see them too.
    app.jinja_env.globals.update(csrf_token=csrf_token, current_user=current_user,
                                 repository_url=repository_url, home_url=home_url,
                                 token_state=state_of)


class _SessionCookies(SecureCookieSessionInterface):
    """The session cookie is `Secure` whenever the request came over TLS (directly, or through
    a trusted proxy's X-Forwarded-Proto), whatever the base URL says."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(request and request.is_secure) or super().get_cookie_secure(app)
