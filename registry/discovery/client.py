"""The client side of appc discovery: fetch `?ac-discovery=1` pages, walk up, render templates.

For `example.com/team/app` the walk asks, in order, `https://example.com/team/app?ac-discovery=1`,
`https://example.com/team?ac-discovery=1`, `https://example.com?ac-discovery=1` and stops at the
first page giving what is looked for (endpoints, or public keys: two separate walks, so keys may
come from a parent page). As in appc's reference client, a level that fails (4xx, 5xx, network or
TLS error, no matching tag, only templates with unfilled variables) is recorded and the walk goes
on. HTTPS always comes first; plain HTTP is tried only with `allow_http`, and a redirect to plain
HTTP is refused without it. `insecure_tls` skips certificate checks. `port` reaches a registry on a
non-default port (an AC name cannot hold one; 0 or None mean the default). `mirror` (a registry's
base URL) asks that registry instead of the name's domain, at `{mirror}/{prefix}?ac-discovery=1`. Pass a `requests.Session` to send per-domain
headers or trust a private CA (`session.verify = "/path/ca.pem"`).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests
import urllib3

from .appstring import AppRef, parse_app_string, walk_prefixes
from .errors import Attempt, DiscoveryError
from .meta import DISCOVERY, PUBKEYS, MetaTag, parse_meta_tags
from .templates import render_template, unfilled_variables
from .tlserrors import PLAIN_HTTP, kind_of_text, tls_fix, tls_problem

MAX_PAGE_BYTES = 4 * 1024 * 1024  # a discovery page is a few KiB; refuse to swallow a huge body
DEFAULT_TIMEOUT = 20.0


class Endpoint(NamedTuple):
    """One candidate image location: the ACI and its signature (unpacks as `aci, asc`)."""

    aci: str
    asc: str


@dataclass
class DiscoveryResult:
    app: AppRef
    endpoints: list[Endpoint] = field(default_factory=list)
    pubkeys: list[str] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    found_at: str | None = None  # the URL of the page that answered


@dataclass
class _Options:
    session: requests.Session
    insecure_tls: bool
    allow_http: bool
    port: int | None
    timeout: float
    mirror: str | None = None


def discovery_url(prefix: str, scheme: str = "https", port: int | None = None) -> str:
    host, _, path = prefix.partition("/")
    netloc = f"{host}:{port}" if port else host
    return f"{scheme}://{netloc}/{path}?ac-discovery=1" if path else f"{scheme}://{netloc}?ac-discovery=1"


_UNREACHABLE = ("TLS error: ", "cannot connect: ")
PLAIN_HTTP_HINT = ("the server seems to speak plain HTTP: --insecure-options=http (fetch) / "
                   "--insecure-allow-http (trust)")


def _read_page(url: str, opts: _Options) -> tuple[bytes | None, str]:
    """(body, outcome) of one GET; body is None when the page cannot be used."""
    # Pass `verify` explicitly: requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override a
    # session's own CA bundle otherwise, and the caller's private CA would be ignored.
    verify = False if opts.insecure_tls else opts.session.verify
    kwargs: dict[str, Any] = {"timeout": opts.timeout, "stream": True, "allow_redirects": True,
                    "verify": verify}
    try:
        with warnings.catch_warnings():
            # The caller chose to skip TLS checks; urllib3 would repeat that on every request.
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            response = opts.session.get(url, **kwargs)
    except requests.exceptions.SSLError as error:
        return None, f"TLS error: {tls_problem(error).text}"
    except requests.exceptions.TooManyRedirects:
        return None, "too many redirects"
    except requests.exceptions.RequestException as error:
        return None, f"cannot connect: {_short(error)}"
    with response:
        hops = [r.url for r in response.history] + [response.url]
        if not opts.allow_http and any(urlsplit(hop).scheme == "http" for hop in hops):
            return None, f"redirected to plain HTTP ({response.url}), not allowed"
        if response.status_code != 200:
            where = f" (after redirect to {response.url})" if response.history else ""
            return None, f"HTTP {response.status_code}{where}"
        body = bytearray()
        try:
            for chunk in response.iter_content(65536):
                body += chunk
                if len(body) > MAX_PAGE_BYTES:
                    return None, f"page larger than {MAX_PAGE_BYTES} bytes"
        except requests.exceptions.RequestException as error:
            return None, f"read error: {_short(error)}"
        return bytes(body), "HTTP 200"


_ROOT_CAUSE = re.compile(r"(\[SSL: [A-Z_]+\][^'\"]*|\[Errno -?\d+\][^'\"]*|timed out)")
_SSL_SOURCE = re.compile(r"\s*\(_ssl\.c:\d+\)")


def _balanced(text: str) -> str:
    """`text` without unmatched `)` and cut before an unclosed `(` (never mid-parenthesis)."""
    out: list[str] = []
    opened: list[int] = []
    for ch in text:
        if ch == "(":
            opened.append(len(out))
        elif ch == ")":
            if not opened:
                continue
            opened.pop()
        out.append(ch)
    result = "".join(out)
    if opened:
        result = result[:opened[0]]
    return result.strip()


def _short(error: Exception) -> str:
    """The root cause inside requests' nested error text, e.g. `[Errno 111] Connection refused`."""
    text = _SSL_SOURCE.sub("", str(error))
    found = _ROOT_CAUSE.search(text)
    if found:
        return _balanced(found.group(1))
    return text if len(text) <= 300 else _balanced(text[:297]) + "..."


def network_cause(error: Exception) -> str:
    """A short cause for a requests error, in words: `connection refused`, `name or service not
    known`, `timed out`, `TLS error: [SSL: CERTIFICATE_VERIFY_FAILED] ...`."""
    if isinstance(error, requests.exceptions.SSLError):
        return f"TLS error: {tls_problem(error).text}"
    return _in_words(_short(error))


def _in_words(cause: str) -> str:
    cause = re.sub(r"^\[Errno -?\d+\]\s*", "", cause)
    return cause[:1].lower() + cause[1:]


def _fetch_level(prefix: str, opts: _Options, attempts: list[Attempt]) -> tuple[list[MetaTag], str] | None:
    """The meta tags of one walk level (HTTPS, then HTTP when allowed), or None."""
    schemes = ["https", "http"] if opts.allow_http else ["https"]
    if opts.mirror is not None:  # a registry answering for the domain: its own scheme and port
        schemes = [opts.mirror]
    for scheme in schemes:
        url = (f"{opts.mirror}/{prefix}?ac-discovery=1" if opts.mirror is not None
               else discovery_url(prefix, scheme, opts.port))
        body, outcome = _read_page(url, opts)
        if body is not None:
            return parse_meta_tags(body), url
        attempts.append(Attempt(url, outcome, unreachable=outcome.startswith(_UNREACHABLE)))
    return None


def _endpoints_from(tags: list[MetaTag], app: AppRef) -> tuple[list[Endpoint], list[str]]:
    """Candidate endpoints from the page's tags, and notes on skipped templates."""
    values = app.template_values()
    endpoints: list[Endpoint] = []
    skipped: list[str] = []
    for tag in tags:
        if tag.kind != DISCOVERY or not tag.applies_to(app.name):
            continue
        aci = render_template(tag.url, {**values, "ext": "aci"})
        asc = render_template(tag.url, {**values, "ext": "aci.asc"})
        if aci is None or asc is None:
            missing = unfilled_variables(tag.url, {**values, "ext": "aci"})
            skipped.append(f"{tag.url} (unfilled {' '.join(missing) or 'variable'})")
            continue
        endpoints.append(Endpoint(aci, asc))
    return endpoints, skipped


def _pubkeys_from(tags: list[MetaTag], app: AppRef) -> list[str]:
    return [t.url for t in tags if t.kind == PUBKEYS and t.applies_to(app.name)]


def _answer(tags: list[MetaTag], ref: AppRef, want: str, result: DiscoveryResult) -> str | None:
    """Fill `result` from one page's tags; None when it answers, else why it does not."""
    endpoints, skipped = _endpoints_from(tags, ref)
    pubkeys = _pubkeys_from(tags, ref)
    if want == DISCOVERY and not endpoints:
        why = f'no ac-discovery meta tag matched "{ref.name}"'
        return why + ("; skipped templates " + ", ".join(skipped) if skipped else "")
    if want == PUBKEYS and not pubkeys:
        return f'no ac-discovery-pubkeys meta tag matched "{ref.name}"'
    result.endpoints, result.pubkeys = endpoints, pubkeys
    return None


def _walk(app: AppRef | str, want: str, session: requests.Session | None, insecure_tls: bool,
          allow_http: bool, port: int | None, timeout: float,
          mirror: str | None = None) -> DiscoveryResult:
    ref = parse_app_string(app) if isinstance(app, str) else app
    if port is not None and not 0 <= int(port) < 65536:
        raise DiscoveryError(f"port must be within 1..65535 (0 or None: the default), not {port}")
    opts = _Options(session or requests.Session(), insecure_tls, allow_http, port, timeout,
                    mirror.rstrip("/") if mirror else None)
    result = DiscoveryResult(ref)
    try:
        for prefix in walk_prefixes(ref.name):
            level = _fetch_level(prefix, opts, result.attempts)
            if level is None:
                continue
            tags, url = level
            why_not = _answer(tags, ref, want, result)
            result.attempts.append(Attempt(url, why_not or "found", ok=why_not is None))
            if why_not is None:
                result.found_at = url
                return result
    finally:
        if session is None:
            opts.session.close()
    raise DiscoveryError(_failure_message(ref, want, result.attempts), result.attempts)


def _failure_message(ref: AppRef, want: str, attempts: list[Attempt]) -> str:
    tried_http = any(urlsplit(a.url).scheme == "http" for a in attempts)
    if attempts and all(a.unreachable for a in attempts):
        # No server answered: that is the news, not the missing meta tags.
        summary = _unreachable_summary(attempts)
        headline = "could not connect to " + " or ".join(summary)
        fix = _tls_hint(attempts, tried_http)
        if len(summary) == 1 and fix and attempts[0].outcome.startswith("TLS error: "):
            # Every level failed the same TLS check on the same server: one line says it all
            # (cause and fix), rather than the same refusal once per level.
            return headline + (f"; {fix}" if fix else "")
        lines = [headline]
    else:
        lines = [f"no {want} meta tag matched \"{ref.name}\" at "
                 + ", ".join(a.url for a in attempts)]
        fix = _tls_hint(attempts, tried_http)
    lines += [f"  {a.url}: {a.outcome}" for a in attempts]
    if fix:
        lines.append(f"hint: {fix}")
    return "\n".join(lines)


def _tls_hint(attempts: list[Attempt], tried_http: bool) -> str | None:
    """Advice for the first TLS failure (trust and fetch take the same flags)."""
    for attempt in attempts:
        if attempt.outcome.startswith("TLS error: "):
            kind = kind_of_text(attempt.outcome)
            if kind == PLAIN_HTTP:
                return None if tried_http else PLAIN_HTTP_HINT
            return tls_fix(kind, host=urlsplit(attempt.url).hostname)
    return None


def _unreachable_summary(attempts: list[Attempt]) -> list[str]:
    """`host:port (cause)` for each distinct server and cause, e.g. `127.0.0.1:443 (connection
    refused)`."""
    seen: list[str] = []
    for attempt in attempts:
        parts = urlsplit(attempt.url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            port = 443 if parts.scheme == "https" else 80
        cause = attempt.outcome
        if cause.startswith("cannot connect: "):
            cause = _in_words(cause.removeprefix("cannot connect: "))
        item = f"{parts.hostname}:{port} ({cause})"
        if item not in seen:
            seen.append(item)
    return seen


def discover_endpoints(app: AppRef | str, *, session: requests.Session | None = None,
                       insecure_tls: bool = False, allow_http: bool = False,
                       port: int | None = None, timeout: float = DEFAULT_TIMEOUT,
                       mirror: str | None = None) -> DiscoveryResult:
    """Walk up until a page gives at least one ac-discovery template that renders for `app`.

    Returns the candidates in page order (`.endpoints`), the matching pubkeys URLs of that same
    page if any (`.pubkeys`), and every URL tried (`.attempts`). Raises DiscoveryError naming
    every URL tried and why it did not answer.
    """
    return _walk(app, DISCOVERY, session, insecure_tls, allow_http, port, timeout, mirror)


def discover_pubkeys(app: AppRef | str, *, session: requests.Session | None = None,
                     insecure_tls: bool = False, allow_http: bool = False,
                     port: int | None = None, timeout: float = DEFAULT_TIMEOUT,
                     mirror: str | None = None) -> DiscoveryResult:
    """Walk up until a page gives at least one ac-discovery-pubkeys URL applying to `app`.

    A separate walk from discover_endpoints: the keys may come from a parent page.
    """
    return _walk(app, PUBKEYS, session, insecure_tls, allow_http, port, timeout, mirror)
