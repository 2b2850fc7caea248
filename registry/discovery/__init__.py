"""appc image discovery both ways: meta tags and templates for the server, app strings, parsing and the walk-up for the client.

Server side:
- `meta_tags(prefix, aci_template, pubkeys_url) -> str` (HTML-escaped `<meta>` lines),
  `discovery_document(tags, title)` (a minimal page around them).
- URL layout (registry.discovery.layout): `aci_template(base_url)` ->
  `{base}/_aci/{name}/{version}/{os}/{arch}/image.{ext}`, `pubkeys_url(base_url, prefix=None)`
  -> `{base}/_aci/pubkeys.gpg`, `aci_path(...)`, `parse_aci_path(path)`, and the Flask rules
  `FLASK_ACI_RULE`, `FLASK_PUBKEYS_RULE`, `FLASK_PREFIX_PUBKEYS_RULE`; Quay's layout as an
  alias: `quay_aci_template(base_url)` -> `{base}/c1/aci/{name}/{version}/{ext}/{os}/{arch}/`,
  `/aci-signing-key`, `QUAY_EXTENSIONS`, `FLASK_QUAY_ACI_RULE`, `FLASK_QUAY_PUBKEYS_RULE`.

Client side:
- `parse_app_string(s) -> AppRef(name, labels, given)`: defaults filled (version=latest, host
  os/arch); `AppRef.labels_to_match()` is what a fetched manifest must carry.
- `discover_endpoints(app, *, session, insecure_tls, allow_http, port, timeout)` and
  `discover_pubkeys(...)` -> `DiscoveryResult(app, endpoints=[Endpoint(aci, asc)], pubkeys=[url],
  attempts=[Attempt(url, outcome, ok)], found_at)`; failures raise `DiscoveryError` (with
  `.attempts`). `parse_meta_tags(html)`, `render_template(tpl, values)` are public helpers;
  `network_cause(error)` says why a `requests` call failed in a few words.
"""

from typing import TYPE_CHECKING

from .appstring import (
    AC_IDENTIFIER,
    DEFAULT_VERSION,
    AppRef,
    appc_arch,
    host_arch,
    host_os,
    parse_app_string,
    walk_prefixes,
)
from .errors import AppStringError, Attempt, DiscoveryError
from .layout import (
    ACI_TEMPLATE_PATH,
    EXTENSIONS,
    FILES_ROOT,
    FLASK_ACI_RULE,
    FLASK_PREFIX_PUBKEYS_RULE,
    FLASK_PUBKEYS_RULE,
    FLASK_QUAY_ACI_RULE,
    FLASK_QUAY_PUBKEYS_RULE,
    PUBKEYS_PATH,
    QUAY_EXTENSIONS,
    QUAY_PUBKEYS_PATH,
    AciLocation,
    aci_path,
    aci_template,
    parse_aci_path,
    pubkeys_url,
    quay_aci_template,
)
from .meta import DISCOVERY, PUBKEYS, MetaTag, discovery_document, meta_tags, parse_meta_tags
from .templates import render_template, unfilled_variables

# Function-local imports keep start-up fast (see the client half's lazy loading below).

# The client half pulls in requests; load it on first use so that the server and `acbuild`
# (which only need tags, layout and app strings) start quickly.
_CLIENT_NAMES = frozenset({"DiscoveryResult", "Endpoint", "discover_endpoints",
                           "discover_pubkeys", "discovery_url", "network_cause"})
# The TLS error words import ssl (~7 ms); only a failed request needs them, so `acbuild` and
# `pyrkt run` of a stored image do not pay for them.
_TLS_NAMES = frozenset({"TLSProblem", "tls_fix", "tls_problem"})
if TYPE_CHECKING:
    from .client import (
        DiscoveryResult,
        Endpoint,
        discover_endpoints,
        discover_pubkeys,
        discovery_url,
        network_cause,
    )
    from .tlserrors import TLSProblem, tls_fix, tls_problem


def __getattr__(name: str) -> object:
    if name in _CLIENT_NAMES:
        from . import client

        return getattr(client, name)
    if name in _TLS_NAMES:
        from . import tlserrors

        return getattr(tlserrors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "AC_IDENTIFIER", "ACI_TEMPLATE_PATH", "DEFAULT_VERSION", "DISCOVERY", "EXTENSIONS",
    "FILES_ROOT", "FLASK_ACI_RULE", "FLASK_PREFIX_PUBKEYS_RULE", "FLASK_PUBKEYS_RULE",
    "FLASK_QUAY_ACI_RULE", "FLASK_QUAY_PUBKEYS_RULE", "QUAY_EXTENSIONS", "QUAY_PUBKEYS_PATH",
    "quay_aci_template",
    "PUBKEYS", "PUBKEYS_PATH", "AciLocation", "AppRef", "AppStringError", "Attempt",
    "DiscoveryError", "DiscoveryResult", "Endpoint", "MetaTag", "aci_path", "aci_template",
    "appc_arch", "discover_endpoints", "discover_pubkeys", "discovery_document", "discovery_url",
    "host_arch", "host_os", "meta_tags", "network_cause", "parse_aci_path", "parse_app_string", "parse_meta_tags",
    "pubkeys_url", "render_template", "unfilled_variables", "walk_prefixes",
    "TLSProblem", "tls_fix", "tls_problem",
]
