"""appc discovery and the human page, on the same URL: `https://DOMAIN/PATH[?ac-discovery=1]`.

The name is the request's host (a hosted domain) plus the path. When the host is the
registry's own (the base URL's) but not a hosted domain, the path carries the full name:
`https://registry.example.com/example.com/team/app?ac-discovery=1`, so a domain's own web
server can simply redirect discovery requests to the registry.

Every AC name under a hosted domain answers `?ac-discovery=1` with the same two meta tags,
whether a repository exists, is private, or not: the tags describe this server's URL layout,
never a repository's contents, so private names leak nothing. Without the query it is the
human page: a repository (if readable) or a listing of the readable repositories under a path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, redirect, render_template, request
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response as WsgiResponse

from registry.discovery import aci_template, discovery_document, meta_tags, pubkeys_url
from registry.server.context import config, db
from registry.server.operations.mirror import mirror_for
from registry.server.services.names import is_ac_identifier
from registry.server.ui.browse import name_page
from registry.server.ui.urls import repository_url

bp = Blueprint("discovery", __name__)


def hosted_name(host: str, path: str, base_host: str, domains: frozenset[str] | tuple[str, ...]) -> str | None:
    """The AC name a page request addresses, or None when it is not one this registry hosts."""
    path = path.strip("/")
    if host in domains:
        name = f"{host}/{path}" if path else host
    elif host == base_host and path.split("/", 1)[0] in domains:
        name = path
    else:
        return None
    return name if not path.startswith("_") and is_ac_identifier(name) else None


def mirrored_name(host: str, path: str, base_host: str) -> str | None:
    """The AC name a request addresses under a mirrored prefix, or None. On the registry's own
    host the path carries the full name; on another host (a domain pointed at the mirror by
    DNS or a client's port setting) the host is the name's domain."""
    path = path.strip("/")
    name = path if host == base_host else (f"{host}/{path}" if path else host)
    if not name or path.startswith("_") or not is_ac_identifier(name):
        return None
    return name if mirror_for(db(), name) is not None else None


def _base_host(base_url: str) -> str:
    return (urlsplit(base_url).hostname or "").lower()


def discovery_tags(name: str) -> str:
    """The ac-discovery and ac-discovery-pubkeys meta tags for a name (or a parent of names)."""
    return _tags(config().base_url, name)


@lru_cache(maxsize=4096)
def _tags(base_url: str, name: str) -> str:
    return meta_tags(name, aci_template(base_url), pubkeys_url(base_url, name))


@lru_cache(maxsize=4096)
def discovery_body(base_url: str, name: str) -> bytes:
    """The whole `?ac-discovery=1` answer for a name: it depends on nothing else."""
    return discovery_document(_tags(base_url, name), title=name).encode()


DISCOVERY_HEADERS = [("Content-Type", "text/html; charset=utf-8"),
                     ("Cache-Control", "public, max-age=300")]


class DiscoveryFastPath:
    """WSGI middleware answering plain `GET /PATH?ac-discovery=1` before Flask routes it.

    Discovery is the hottest path (every fetch walks it, often several times) and its answer
    is a pure function of host, path and configuration, so skipping Flask's request and
    routing machinery roughly doubles the rate. It renders with the very functions the
    Flask view uses (`discovery_body`); anything unusual (other query parameters, another
    method, a name it would refuse) falls through to the Flask view, which gives the answer
    or the error.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], base_url: str,
                 domains: tuple[str, ...]) -> None:
        self.app = app
        self.base_url = base_url
        self.domains = frozenset(domains)
        self.base_host = _base_host(base_url)

    def body_for(self, host_header: str, path: str) -> bytes | None:
        """The answer to `?ac-discovery=1` for a Host header and a path, or None when the Flask
        view must answer (a name this registry does not host: a mirror, a 404)."""
        name = hosted_name(request_host(host_header), path, self.base_host, self.domains)
        return None if name is None else discovery_body(self.base_url, name)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("QUERY_STRING") == "ac-discovery=1" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            body = self.body_for(environ.get("HTTP_HOST") or "", environ.get("PATH_INFO", ""))
            if body is not None:
                start_response("200 OK", [*DISCOVERY_HEADERS, ("Content-Length", str(len(body)))])
                return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]
        return self.app(environ, start_response)


def request_host(host_header: str) -> str:
    """The host a Host header names, without its port, lower case."""
    return host_header.rsplit(":", 1)[0].lower()


@bp.route("/", defaults={"path": ""}, methods=["GET", "HEAD"])
@bp.route("/<path:path>", methods=["GET", "HEAD"])
def page(path: str) -> WsgiResponse | str | tuple[str, int]:
    settings = config()
    host = (urlsplit("//" + request.host).hostname or "").lower()
    name = hosted_name(host, path, _base_host(settings.base_url), settings.domains)
    if name is None:
        mirrored = mirrored_name(host, path, _base_host(settings.base_url))
        if mirrored is not None:
            # A name hosted upstream: the same tags as ours, pointing at this registry, which
            # fetches from upstream on the first request (registry.server.operations.mirror).
            response = Response(discovery_body(settings.base_url, mirrored), mimetype="text/html")
            response.headers["Cache-Control"] = "public, max-age=300"
            return response
        abort(404, description=f"this registry serves names under {', '.join(settings.domains)}")
    if request.args.get("ac-discovery") == "1":
        response = Response(discovery_body(config().base_url, name), mimetype="text/html")
        response.headers["Cache-Control"] = "public, max-age=300"
        return response
    return human_page(name, discovery_tags(name))


def full_name_in_path(name: str) -> str | None:
    """`127.0.0.1/127.0.0.1/demo/hello` (a full image name pasted after a hosted domain's
    URL) -> `127.0.0.1/demo/hello`; None when the path is not a full hosted name."""
    _host, _, path = name.partition("/")
    first, _, rest = path.partition("/")
    return path if rest and first in config().domains and is_ac_identifier(path) else None


def human_page(name: str, tags: str) -> WsgiResponse | str | tuple[str, int]:
    """The web UI's page for the name (registry.server.ui.browse); it carries the same tags.
    No readable repository (missing, or private and unreadable: the same page, so existence
    does not leak) and nothing readable under the path: the styled 404 page."""
    try:
        return name_page(name, tags)
    except NotFound:
        target = full_name_in_path(name)
        if target is not None:
            return redirect(repository_url(target), code=302)
        return render_template("ui/error.html", status=404, message=f"No repository {name} here.",
                               link_text="Browse the repositories"), 404
