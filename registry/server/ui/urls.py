"""Links to the human pages, which live on the discovery URLs.

Usually the browser is on a hosted domain (`https://example.com/team/app`), so a repository's
page is its path under the domain. When the browser is on the registry's own host and that is
not a hosted domain, the discovery route takes the full name as the path
(`https://registry.example.com/example.com/team/app`) and the home page is `/_ui/`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import request, url_for

from registry.server.context import config


def host_domain() -> str | None:
    """The hosted domain the browser is on, if it is on one."""
    host = (urlsplit("//" + request.host).hostname or "").lower()
    return host if host in config().domains else None


def repository_url(name: str) -> str:
    domain, _, rest = name.partition("/")
    return f"/{rest}" if host_domain() == domain else f"/{name}"


def home_url() -> str:
    return "/" if host_domain() else url_for("ui.home")
