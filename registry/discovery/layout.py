"""Where a pyrkt registry serves its files (the server's URL layout, shared with the client).

    {base}/_aci/{name}/{version}/{os}/{arch}/image.aci       the image
    {base}/_aci/{name}/{version}/{os}/{arch}/image.aci.asc   its detached armored signature
    {base}/_aci/pubkeys.gpg                                  the server's public keys (all, one block)
    {base}/_aci/pubkeys/{prefix}/pubkeys.gpg                 keys registered for a name prefix

Quay's layout is served as an alias of the same files (so static discovery pages written for a
Quay registry keep working when pyrkt is behind them):

    {base}/c1/aci/{name}/{version}/{ext}/{os}/{arch}/         ext: aci, aci.asc (or sig)
    {base}/aci-signing-key                                     the server's public keys

`{name}` is the full AC name with its slashes (`example.com/team/app`). The fixed components
after it make the path unambiguous (Werkzeug's `<path:name>` backtracks: see FLASK_ACI_RULE),
and `_aci` can never be the first segment of an image page because AC Identifiers start with a
letter or digit, so these URLs never shadow a repository's human or discovery page
(`{base}/{name minus its domain}`). The server must refuse version/os/arch values holding `/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

FILES_ROOT = "/_aci"
ACI_TEMPLATE_PATH = FILES_ROOT + "/{name}/{version}/{os}/{arch}/image.{ext}"
PUBKEYS_PATH = FILES_ROOT + "/pubkeys.gpg"
EXTENSIONS = ("aci", "aci.asc")

# Flask/Werkzeug rules for the server's blueprints (the server validates `ext` in EXTENSIONS).
FLASK_ACI_RULE = FILES_ROOT + "/<path:name>/<version>/<os>/<arch>/image.<ext>"
FLASK_PUBKEYS_RULE = PUBKEYS_PATH
FLASK_PREFIX_PUBKEYS_RULE = FILES_ROOT + "/pubkeys/<path:prefix>/pubkeys.gpg"

# Quay's paths (its verbs blueprint under /c1): `{ext}` is a path segment there.
QUAY_ACI_TEMPLATE_PATH = "/c1/aci/{name}/{version}/{ext}/{os}/{arch}/"
QUAY_PUBKEYS_PATH = "/aci-signing-key"
QUAY_EXTENSIONS = {"aci": "aci", "aci.asc": "aci.asc", "sig": "aci.asc"}
FLASK_QUAY_ACI_RULE = "/c1/aci/<path:name>/<version>/<kind>/<os>/<arch>/"
FLASK_QUAY_PUBKEYS_RULE = QUAY_PUBKEYS_PATH

_ACI_PATH = re.compile(
    r"^" + re.escape(FILES_ROOT) + r"/(?P<name>.+)/(?P<version>[^/]+)/(?P<os>[^/]+)/(?P<arch>[^/]+)"
    r"/image\.(?P<ext>aci|aci\.asc)$"
)


def _base(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base URL must be absolute http(s), e.g. https://registry.example.com: "
                         f"{base_url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"base URL must not carry a query or fragment: {base_url!r}")
    return base_url.rstrip("/")


def aci_template(base_url: str) -> str:
    """The ac-discovery template this server announces, e.g.
    `https://reg.example.com/_aci/{name}/{version}/{os}/{arch}/image.{ext}`."""
    return _base(base_url) + ACI_TEMPLATE_PATH


def quay_aci_template(base_url: str) -> str:
    """Quay's ac-discovery template on this server (an alias of `aci_template`'s files)."""
    return _base(base_url) + QUAY_ACI_TEMPLATE_PATH


def pubkeys_url(base_url: str, prefix: str | None = None) -> str:
    """The URL of the server's armored public keys, or of the keys registered for `prefix`."""
    if prefix is None:
        return _base(base_url) + PUBKEYS_PATH
    return f"{_base(base_url)}{FILES_ROOT}/pubkeys/{prefix.strip('/')}/pubkeys.gpg"


def aci_path(name: str, version: str, os: str, arch: str, ext: str = "aci") -> str:
    """The server path of one file (what the template renders to, without the base URL)."""
    if ext not in EXTENSIONS:
        raise ValueError(f"ext must be one of {EXTENSIONS}, not {ext!r}")
    for what, value in (("version", version), ("os", os), ("arch", arch)):
        if not value or "/" in value:
            raise ValueError(f"{what} must be non-empty and hold no '/': {value!r}")
    return ACI_TEMPLATE_PATH.format(name=name, version=version, os=os, arch=arch, ext=ext)


@dataclass(frozen=True)
class AciLocation:
    name: str
    version: str
    os: str
    arch: str
    ext: str


def parse_aci_path(path: str) -> AciLocation | None:
    """The inverse of aci_path (for servers not routed by Werkzeug); None if it is not one."""
    found = _ACI_PATH.match(path)
    return AciLocation(**found.groupdict()) if found else None
