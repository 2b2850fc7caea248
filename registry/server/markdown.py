"""Repository descriptions: Markdown rendered to HTML that cannot carry markup of its own.

Two kept libraries, two layers: markdown-it-py renders CommonMark (plus tables and
strikethrough) with raw HTML turned off, so `<script>` in a description is shown as text;
nh3 (the ammonia sanitiser) then keeps only an allow-list of tags and attributes and only
http(s)/mailto links, as a second fence should a rendering rule ever emit something unsafe.
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "td": {"align"}, "th": {"align"},
                      "ol": {"start"}, "code": {"class"}}
URL_SCHEMES = {"http", "https", "mailto"}
MAX_DESCRIPTION = 20_000


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # "js-default": CommonMark with html off and linkify off; tables and ~~strike~~ on.
    return MarkdownIt("js-default", {"html": False, "typographer": False}).enable(
        ["table", "strikethrough"])


@lru_cache(maxsize=512)
def render_markdown(text: str) -> Markup:
    """Safe HTML for a description (empty text renders as nothing)."""
    if not text.strip():
        return Markup("")
    html = _parser().render(text[:MAX_DESCRIPTION])
    clean = nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                      url_schemes=URL_SCHEMES, link_rel="nofollow noopener noreferrer")
    return Markup(clean)  # noqa: S704 - sanitised by nh3 just above
