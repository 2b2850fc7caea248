"""appc discovery and the human page, on the same URL: `https://DOMAIN/PATH[?ac-discovery=1]`.

Every AC name under a hosted domain answers `?ac-discovery=1` with the same two meta tags,
whether a repository exists, is private, or not: the tags describe this server's URL layout,
never a repository's contents, so private names leak nothing. Without the query it is the
human page: a repository (if readable) or a listing of the readable repositories under a path.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, render_template, request

from registry.discovery import aci_template, discovery_document, meta_tags, pubkeys_url
from registry.server.auth import reader_actor
from registry.server.context import config, db
from registry.server.services import repositories
from registry.server.services.access import can_read
from registry.server.services.names import is_ac_identifier

bp = Blueprint("discovery", __name__)


def request_domain() -> str | None:
    """The hosted domain this request addresses (its Host header without the port)."""
    host = urlsplit("//" + request.host).hostname
    if host is None:
        return None
    host = host.lower()
    return host if host in config().domains else None


def discovery_tags(name: str) -> str:
    """The ac-discovery and ac-discovery-pubkeys meta tags for a name (or a parent of names)."""
    base = config().base_url
    return meta_tags(name, aci_template(base), pubkeys_url(base, name))


@bp.route("/", defaults={"path": ""}, methods=["GET", "HEAD"])
@bp.route("/<path:path>", methods=["GET", "HEAD"])
def page(path: str) -> Response | str:
    domain = request_domain()
    if domain is None:
        abort(404, description=f"this registry serves names under {', '.join(config().domains)}")
    path = path.strip("/")
    name = f"{domain}/{path}" if path else domain
    if not is_ac_identifier(name):
        abort(404)
    tags = discovery_tags(name)
    if request.args.get("ac-discovery") == "1":
        response = Response(discovery_document(tags, title=name), mimetype="text/html")
        response.headers["Cache-Control"] = "public, max-age=300"
        return response
    return human_page(name, tags)


def human_page(name: str, tags: str) -> Response | str:
    actor = reader_actor()
    session = db()
    repository = repositories.visible_or_none(session, actor, name)
    if repository is not None and can_read(session, actor, repository):
        tag_rows = repositories.list_tags(session, actor, name)
        return render_template("repository.html", name=name, repository=repository,
                               tags=tag_rows, discovery_tags=tags, children=[],
                               base_url=config().base_url)
    children = repositories.list_repositories(session, actor, prefix=name)
    if not children and "/" in name:
        # Nothing readable here: the same 404 whether private repositories exist or not.
        abort(404)
    return render_template("repository.html", name=name, repository=None, tags=[],
                           discovery_tags=tags, children=children, base_url=config().base_url)
