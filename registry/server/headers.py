"""Security headers and the same-origin rule for the web pages.

Every HTML answer (the UI, discovery pages, error and outage pages) carries a Content Security
Policy without inline script (scripts and styles come from /_static only), refuses framing
(`frame-ancestors 'none'` and X-Frame-Options DENY, against clickjacking), and names a
Referrer-Policy; every answer carries nosniff, so no browser guesses a type the registry did
not send (an uploaded file served as HTML, say).

`same_origin(request, base_url)`: state-changing UI requests must come from the registry's own
pages, shown by Origin (or, from browsers that omit it, Referer) naming this registry. It is
checked in addition to the CSRF token (ui/csrf.py); a cross-site form post fails both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from flask import Request

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HTML_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
ALL_HEADERS = {"X-Content-Type-Options": "nosniff"}


def security_headers(content_type: str | None) -> dict[str, str]:
    """The headers an answer of `content_type` gets (also used outside Flask: the shield)."""
    headers = dict(ALL_HEADERS)
    if content_type and content_type.split(";", 1)[0].strip().lower() == "text/html":
        headers.update(HTML_HEADERS)
    return headers


def add_security_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Append to an answer's headers those above that it does not set itself (in place)."""
    present = {name.lower() for name, _ in headers}
    content_type = next((v for n, v in headers if n.lower() == "content-type"), None)
    headers.extend((name, value) for name, value in security_headers(content_type).items()
                   if name.lower() not in present)
    return headers


class SecurityHeaders:
    """WSGI middleware (outside Flask, so the discovery fast path's pages get them too): adds
    the headers above to every answer that does not set them itself. The worker's discovery
    lane (registry/server/lane.py) applies the same `add_security_headers`."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def with_headers(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, add_security_headers(headers), exc_info)

        return self.app(environ, with_headers)


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    try:
        port = parts.port or default
    except ValueError:
        return None
    return f"{parts.scheme}://{parts.hostname.lower()}:{port}"


def same_origin(request: Request, base_url: str) -> str | None:
    """None when the request comes from this registry's pages, else why not (one line)."""
    ours = {_origin_of(base_url), _origin_of(request.host_url)} - {None}
    origin = request.headers.get("Origin")
    if origin is not None:
        # "null": a sandboxed frame, a file:// page or a cross-origin redirect: never ours.
        if _origin_of(origin) in ours:
            return None
        return f"the request comes from another site ({origin[:100]})"
    referer = request.headers.get("Referer")
    if referer:
        if _origin_of(referer) in ours:
            return None
        return "the request comes from another site (by its Referer)"
    return "the request names no origin (neither Origin nor Referer)"
