"""Reading and writing appc discovery meta tags.

`<meta name="ac-discovery" content="PREFIX URL-TEMPLATE">` and
`<meta name="ac-discovery-pubkeys" content="PREFIX PUBKEY-URL">` may appear anywhere in a page.
The content is split at its first run of whitespace; a tag without both parts is ignored, as
are meta names not starting with `ac-` (appc's reference parser does the same).
"""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass

DISCOVERY = "ac-discovery"
PUBKEYS = "ac-discovery-pubkeys"


@dataclass(frozen=True)
class MetaTag:
    kind: str  # "ac-discovery" or "ac-discovery-pubkeys"
    prefix: str
    url: str

    def applies_to(self, name: str) -> bool:
        """appc prefix matching: a plain string prefix of the image name."""
        return name.startswith(self.prefix)


def parse_meta_tags(document: bytes | str) -> list[MetaTag]:
    """Every well-formed ac-discovery / ac-discovery-pubkeys tag of an HTML page, in order."""
    # Imported here: the server and the builder use this module without parsing any HTML.
    from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(document, "html.parser")
    tags: list[MetaTag] = []
    for element in soup.find_all("meta"):
        kind = element.get("name")
        content = element.get("content")
        if not isinstance(kind, str) or not isinstance(content, str):
            continue
        kind = kind.strip().lower()
        if kind not in (DISCOVERY, PUBKEYS):
            continue
        parts = content.split(maxsplit=1)
        if len(parts) < 2:
            continue
        tags.append(MetaTag(kind, parts[0], parts[1].strip()))
    return tags


def meta_tags(prefix: str, aci_template: str, pubkeys_url: str | None) -> str:
    """The two meta tags (HTML-escaped) announcing `aci_template` and `pubkeys_url` for `prefix`.

    `pubkeys_url=None` leaves out the pubkeys tag. Neither part may contain whitespace: appc
    splits the content at the first whitespace and a URL never holds any.
    """
    for what, value in (("prefix", prefix), ("template", aci_template), ("pubkeys URL", pubkeys_url)):
        if value is not None and (not value or any(ch.isspace() for ch in value)):
            raise ValueError(f"meta tag {what} must be non-empty and hold no whitespace: {value!r}")
    lines = [_meta(DISCOVERY, f"{prefix} {aci_template}")]
    if pubkeys_url is not None:
        lines.append(_meta(PUBKEYS, f"{prefix} {pubkeys_url}"))
    return "\n".join(lines) + "\n"


def _meta(name: str, content: str) -> str:
    return f'<meta name="{html.escape(name, quote=True)}" content="{html.escape(content, quote=True)}">'


def discovery_document(tags: str, title: str = "pyrkt registry") -> str:
    """A minimal complete HTML page around already-rendered meta tags (e.g. from meta_tags)."""
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n{tags}</head><body></body></html>\n")
