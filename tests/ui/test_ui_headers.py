"""Security headers on every HTML page (CSP without inline script, no framing, nosniff,
Referrer-Policy) and templates that need no inline script to work under that policy."""

from __future__ import annotations

import re

import pytest
from ui_app import UiApp, get, login

from registry.resources import templates_dir

PAGES = ["/", "/_ui/login", "/_ui/account", "/_ui/users", "/_ui/keys", "/_ui/audit",
         "/_ui/repositories/new", "/no/such/page", "/team?ac-discovery=1"]


@pytest.mark.parametrize("path", PAGES)
def test_every_html_page_carries_the_security_headers(ui_app: UiApp, path: str) -> None:
    client = ui_app.client()
    login(client)
    answer = get(client, path, headers={"Accept": "text/html"})
    assert answer.mimetype == "text/html", (path, answer.status_code, answer.mimetype)
    csp = answer.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'" and directives["default-src"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert directives["frame-ancestors"] == "'none'"
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "same-origin"


def test_downloads_and_json_are_nosniff(ui_app: UiApp) -> None:
    client = ui_app.client()
    for path in ("/_aci/pubkeys.gpg", "/_api/v1/repositories", "/_health"):
        answer = get(client, path)
        assert answer.headers["X-Content-Type-Options"] == "nosniff", path


def test_templates_hold_no_inline_script_or_style() -> None:
    inline_script = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
    handler = re.compile(r"\son[a-z]+\s*=", re.I)
    for template in templates_dir().rglob("*.html"):
        text = template.read_text()
        assert not inline_script.search(text), f"{template.name}: inline <script>"
        assert not handler.search(text), f"{template.name}: an on...= event handler attribute"
        assert "javascript:" not in text.lower(), f"{template.name}: a javascript: URL"
        assert not re.search(r"\sstyle\s*=", text), f"{template.name}: a style attribute"
        assert "<style" not in text.lower(), f"{template.name}: an inline <style>"
