"""The discovery client against hand-written HTML served by Python's http.server (no pyrkt server)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from static_site import StaticSite, make_tls_files

from registry.discovery import (
    DiscoveryError,
    Endpoint,
    discover_endpoints,
    discover_pubkeys,
    parse_app_string,
)

HOST = "127.0.0.1"


def page(*tags: tuple[str, str, str], body: str = "") -> str:
    metas = "\n".join(f'<meta name="{kind}" content="{prefix} {url}">' for kind, prefix, url in tags)
    return f"<!DOCTYPE html><html><head><title>t</title>\n{metas}\n</head><body>{body}</body></html>"


def write(root: Path, path: str, html: str) -> None:
    """A page answering GET /path?ac-discovery=1 (as path/index.html)."""
    target = root / path.strip("/") / "index.html" if path.strip("/") else root / "index.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(html)


def app(text: str) -> object:
    return parse_app_string(text, os_name="linux", arch="amd64")


def test_endpoints_on_the_image_page_itself(tmp_path: Path) -> None:
    write(tmp_path, "team/app", page(
        ("ac-discovery", f"{HOST}/team", "https://files.example/{name}-{version}-{os}-{arch}.{ext}"),
        ("ac-discovery-pubkeys", f"{HOST}/team", "https://files.example/keys.asc")))
    with StaticSite(tmp_path) as site:
        result = discover_endpoints(app(f"{HOST}/team/app:1.0"), allow_http=True, port=site.port)
    name = f"{HOST}/team/app"
    assert result.endpoints == [Endpoint(f"https://files.example/{name}-1.0-linux-amd64.aci",
                                         f"https://files.example/{name}-1.0-linux-amd64.aci.asc")]
    assert result.pubkeys == ["https://files.example/keys.asc"]
    assert result.found_at == f"http://{HOST}:{site.port}/team/app?ac-discovery=1"


def test_walk_up_to_the_domain_root_with_latest_default(tmp_path: Path) -> None:
    write(tmp_path, "", page(("ac-discovery", HOST, "https://cdn.example/{name}/{version}.{ext}")))
    with StaticSite(tmp_path) as site:
        result = discover_endpoints(app(f"{HOST}/a/b/c"), allow_http=True, port=site.port)
    assert result.endpoints[0].aci == f"https://cdn.example/{HOST}/a/b/c/latest.aci"
    asked = [p for p in site.paths_requested() if "ac-discovery" in p]
    assert asked == ["/a/b/c?ac-discovery=1", "/a/b?ac-discovery=1", "/a?ac-discovery=1",
                     "/?ac-discovery=1"]
    # Each missing level was tried over HTTPS first, then recorded as a failure.
    failed = [a for a in result.attempts if not a.ok]
    assert [a.url.split("://")[0] for a in failed[:2]] == ["https", "http"]
    assert "HTTP 404" in failed[1].outcome


def test_several_templates_are_candidates_in_order_and_prefixes_filter(tmp_path: Path) -> None:
    write(tmp_path, "app", page(
        ("ac-discovery", f"{HOST}/other", "https://nope.example/{name}.{ext}"),
        ("ac-discovery", f"{HOST}/ap", "https://one.example/{name}-{version}.{ext}"),
        ("ac-discovery", HOST, "https://two.example/{os}/{arch}/{name}.{ext}")))
    with StaticSite(tmp_path) as site:
        result = discover_endpoints(app(f"{HOST}/app:2"), allow_http=True, port=site.port)
    assert [e.aci for e in result.endpoints] == [
        f"https://one.example/{HOST}/app-2.aci", f"https://two.example/linux/amd64/{HOST}/app.aci"]
    assert all(e.asc == e.aci + ".asc" for e in result.endpoints)


def test_custom_labels_fill_templates_and_unfilled_templates_are_skipped(tmp_path: Path) -> None:
    write(tmp_path, "app", page(
        ("ac-discovery", HOST, "https://a.example/{name}/{channel}/{version}.{ext}"),
        ("ac-discovery", HOST, "https://b.example/{name}/{flavor}.{ext}")))
    with StaticSite(tmp_path) as site:
        with_channel = discover_endpoints(app(f"{HOST}/app:3,channel=beta"), allow_http=True,
                                          port=site.port)
        assert [e.aci for e in with_channel.endpoints] == [f"https://a.example/{HOST}/app/beta/3.aci"]
        with pytest.raises(DiscoveryError) as caught:
            discover_endpoints(app(f"{HOST}/app"), allow_http=True, port=site.port)
    message = str(caught.value)
    assert "unfilled {channel}" in message and "unfilled {flavor}" in message
    assert f'no ac-discovery meta tag matched "{HOST}/app"' in message


def test_keys_come_from_a_parent_page_in_a_separate_walk(tmp_path: Path) -> None:
    write(tmp_path, "team/app", page(("ac-discovery", HOST, "https://x.example/{name}.{ext}")))
    write(tmp_path, "team", page(("ac-discovery-pubkeys", f"{HOST}/team", "https://k.example/team.gpg")))
    write(tmp_path, "", page(("ac-discovery-pubkeys", HOST, "https://k.example/root.gpg")))
    with StaticSite(tmp_path) as site:
        endpoints = discover_endpoints(app(f"{HOST}/team/app"), allow_http=True, port=site.port)
        keys = discover_pubkeys(app(f"{HOST}/team/app"), allow_http=True, port=site.port)
    assert endpoints.pubkeys == []
    assert keys.pubkeys == ["https://k.example/team.gpg"]
    assert keys.found_at.endswith("/team?ac-discovery=1")


def test_redirects_are_followed_with_the_query(tmp_path: Path) -> None:
    write(tmp_path, "moved/here", page(("ac-discovery", HOST, "https://m.example/{name}.{ext}")))
    with StaticSite(tmp_path, redirects={"/app": "/moved/here/", "/moved/here": "/moved/here/"},
                    redirect_status=301) as site:
        result = discover_endpoints(app(f"{HOST}/app"), allow_http=True, port=site.port)
    assert result.endpoints[0].aci == f"https://m.example/{HOST}/app.aci"
    assert "/moved/here/?ac-discovery=1" in site.paths_requested()


def test_a_4xx_child_page_walks_up(tmp_path: Path) -> None:
    write(tmp_path, "app", page(("ac-discovery", HOST, "https://never.example/{name}.{ext}")))
    write(tmp_path, "", page(("ac-discovery", HOST, "https://root.example/{name}.{ext}")))
    with StaticSite(tmp_path, statuses={"/app": 403}) as site:
        result = discover_endpoints(app(f"{HOST}/app"), allow_http=True, port=site.port)
    assert result.endpoints[0].aci == f"https://root.example/{HOST}/app.aci"
    assert any(a.outcome == "HTTP 403" for a in result.attempts)


def test_error_names_every_url_tried(tmp_path: Path) -> None:
    write(tmp_path, "", page(("ac-discovery", "example.com", "https://e.example/{name}.{ext}")))
    with StaticSite(tmp_path) as site:
        with pytest.raises(DiscoveryError) as caught:
            discover_endpoints(app(f"{HOST}/app"), allow_http=True, port=site.port)
    first_line = str(caught.value).splitlines()[0]
    base = f"{HOST}:{site.port}"
    assert first_line == (f'no ac-discovery meta tag matched "{HOST}/app" at '
                          f"https://{base}/app?ac-discovery=1, http://{base}/app?ac-discovery=1, "
                          f"https://{base}?ac-discovery=1, http://{base}?ac-discovery=1")
    assert len(caught.value.attempts) == 4


def test_plain_http_is_refused_unless_allowed(tmp_path: Path) -> None:
    write(tmp_path, "", page(("ac-discovery", HOST, "https://e.example/{name}.{ext}")))
    with StaticSite(tmp_path) as site:
        with pytest.raises(DiscoveryError) as caught:
            discover_endpoints(app(f"{HOST}/app"), port=site.port)
        assert all(a.url.startswith("https://") for a in caught.value.attempts)
        assert not any("ac-discovery" in p for p in site.paths_requested())
        assert discover_endpoints(app(f"{HOST}/app"), port=site.port, allow_http=True).endpoints


def test_https_redirect_to_plain_http_is_refused_unless_allowed(tmp_path: Path) -> None:
    write(tmp_path / "plain", "", page(("ac-discovery", HOST, "https://e.example/{name}.{ext}")))
    tls = make_tls_files(tmp_path / "tls")
    with StaticSite(tmp_path / "plain") as plain:
        target = f"http://127.0.0.1:{plain.port}/"
        with StaticSite(tmp_path / "empty-site-root", tls=tls, redirects={"/app": target}) as site:
            session = requests.Session()
            session.verify = str(tls.ca_path)
            with pytest.raises(DiscoveryError) as caught:
                discover_endpoints(app(f"{HOST}/app"), port=site.port, session=session)
    assert "redirected to plain HTTP" in str(caught.value)


@pytest.fixture()
def tls_site(tmp_path: Path):
    write(tmp_path / "www", "app", page(("ac-discovery", HOST, "https://s.example/{name}.{ext}"),
                                        ("ac-discovery-pubkeys", HOST, "https://s.example/k.gpg")))
    tls = make_tls_files(tmp_path / "tls")
    with StaticSite(tmp_path / "www", tls=tls) as site:
        yield site, tls


def test_https_with_private_ca(tls_site) -> None:
    site, tls = tls_site
    session = requests.Session()
    session.verify = str(tls.ca_path)
    result = discover_endpoints(app(f"{HOST}/app"), port=site.port, session=session)
    assert result.found_at == f"https://{HOST}:{site.port}/app?ac-discovery=1"
    keys = discover_pubkeys(app(f"{HOST}/app"), port=site.port, session=session)
    assert keys.pubkeys == ["https://s.example/k.gpg"]


def test_https_without_the_ca_fails_with_a_tls_error(tls_site) -> None:
    site, _ = tls_site
    with pytest.raises(DiscoveryError) as caught:
        discover_endpoints(app(f"{HOST}/app"), port=site.port)
    assert "TLS error" in str(caught.value)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)


def test_https_insecure_skip_tls(tls_site) -> None:
    site, _ = tls_site
    result = discover_endpoints(app(f"{HOST}/app"), port=site.port, insecure_tls=True)
    assert result.endpoints[0].aci == f"https://s.example/{HOST}/app.aci"


def test_meta_tags_anywhere_and_odd_content(tmp_path: Path) -> None:
    html = ("<html><body><div><p>docs</p>"
            f'<meta name="ac-discovery" content="{HOST}">'  # no template: ignored
            f'<meta name="ac-other" content="{HOST} https://o.example/{{name}}.{{ext}}">'
            f'<META NAME="ac-discovery" CONTENT="  {HOST}\t\n https://b.example/{{name}}.{{ext}} ">'
            "</div></body></html>")
    write(tmp_path, "app", html)
    with StaticSite(tmp_path) as site:
        result = discover_endpoints(app(f"{HOST}/app"), allow_http=True, port=site.port)
    assert [e.aci for e in result.endpoints] == [f"https://b.example/{HOST}/app.aci"]


def test_huge_or_binary_pages_do_not_break_discovery(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "index.html").write_bytes(b"\x00\xff" * 1000)
    write(tmp_path, "", page(("ac-discovery", HOST, "https://r.example/{name}.{ext}")))
    with StaticSite(tmp_path) as site:
        result = discover_endpoints(app(f"{HOST}/app"), allow_http=True, port=site.port)
    assert result.endpoints[0].aci == f"https://r.example/{HOST}/app.aci"


def test_session_headers_are_sent(tmp_path: Path) -> None:
    write(tmp_path, "", page(("ac-discovery", HOST, "https://r.example/{name}.{ext}")))
    seen: list[str | None] = []

    class Recording(requests.Session):
        def request(self, method, url, *args, **kwargs):  # type: ignore[override]
            response = super().request(method, url, *args, **kwargs)
            seen.append(response.request.headers.get("Authorization"))
            return response

    session = Recording()
    session.headers["Authorization"] = "Bearer abc"
    with StaticSite(tmp_path) as site:
        discover_endpoints(app(f"{HOST}/app"), allow_http=True, port=site.port, session=session)
    assert seen and all(value == "Bearer abc" for value in seen)


def test_connection_refused_is_recorded(tmp_path: Path) -> None:
    with StaticSite(tmp_path) as site:
        port = site.port
    with pytest.raises(DiscoveryError) as caught:
        discover_endpoints(app(f"{HOST}/app"), allow_http=True, port=port, timeout=5)
    assert "cannot connect" in str(caught.value)


def test_endpoints_unpack_as_pairs_and_bad_ports_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "", page(("ac-discovery", HOST, "https://r.example/{name}.{ext}")))
    with StaticSite(tmp_path) as site:
        result = discover_endpoints(f"{HOST}/app:1", allow_http=True, port=site.port)
    [(aci_url, asc_url)] = result.endpoints
    assert (aci_url, asc_url) == (f"https://r.example/{HOST}/app.aci",
                                  f"https://r.example/{HOST}/app.aci.asc")
    for bad in (-1, 70000):
        with pytest.raises(DiscoveryError, match="port"):
            discover_endpoints(f"{HOST}/app", port=bad)


def _balanced(line: str) -> bool:
    depth = 0
    for ch in line:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def test_an_unreachable_server_is_the_headline(tmp_path: Path) -> None:
    with StaticSite(tmp_path) as site:
        port = site.port  # closed again: nothing listens there any more
    with pytest.raises(DiscoveryError) as caught:
        discover_endpoints(app(f"{HOST}/team/app"), port=port, timeout=5)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"could not connect to {HOST}:{port} (connection refused)"
    assert "meta tag" not in str(caught.value)
    assert all(a.unreachable for a in caught.value.attempts)


def test_https_against_plain_http_hints_at_the_insecure_flags(tmp_path: Path) -> None:
    write(tmp_path, "", page(("ac-discovery", HOST, "https://e.example/{name}.{ext}")))
    with StaticSite(tmp_path) as site:
        with pytest.raises(DiscoveryError) as caught:
            discover_endpoints(app(f"{HOST}/app"), port=site.port)
    message = str(caught.value)
    assert message.splitlines()[0].startswith(f"could not connect to {HOST}:{site.port} (TLS error")
    assert "WRONG_VERSION_NUMBER" in message
    assert ("the server seems to speak plain HTTP: --insecure-options=http (fetch) / "
            "--insecure-allow-http (trust)") in message
    assert all(_balanced(line) for line in message.splitlines()), message


def test_a_page_that_answers_keeps_the_meta_tag_headline(tmp_path: Path) -> None:
    write(tmp_path, "", page(("ac-discovery", "example.com", "https://e.example/{name}.{ext}")))
    with StaticSite(tmp_path) as site:
        with pytest.raises(DiscoveryError) as caught:
            discover_endpoints(app(f"{HOST}/app"), allow_http=True, port=site.port)
    assert str(caught.value).startswith("no ac-discovery meta tag matched")
    assert "hint:" not in str(caught.value)  # http was tried: no plain-HTTP hint


def test_network_causes_are_short_and_never_cut_mid_parenthesis() -> None:
    from registry.discovery import network_cause

    refused = requests.exceptions.ConnectionError(
        "HTTPSConnectionPool(host='127.0.0.1', port=443): Max retries exceeded with url: /x "
        "(Caused by NewConnectionError(\"HTTPSConnection(host='127.0.0.1', port=443): Failed "
        "to establish a new connection: [Errno 111] Connection refused\"))")
    assert network_cause(refused) == "connection refused"
    unknown = requests.exceptions.ConnectionError(
        "HTTPSConnectionPool(host='nosuch.invalid', port=443): Max retries exceeded with url: / "
        "(Caused by NameResolutionError(\"HTTPSConnection(host='nosuch.invalid', port=443): "
        "Failed to resolve 'nosuch.invalid' ([Errno -2] Name or service not known)\"))")
    assert network_cause(unknown) == "name or service not known"
    tls = requests.exceptions.SSLError(
        "HTTPSConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: / (Caused "
        "by SSLError(SSLError(1, '[SSL: WRONG_VERSION_NUMBER] wrong version number "
        "(_ssl.c:1006)')))")
    assert network_cause(tls) == ("TLS error: 127.0.0.1 answers plain HTTP, not TLS "
                                  "(WRONG_VERSION_NUMBER: wrong version number)")
    odd = requests.exceptions.ConnectionError("x" * 250 + " (" + "y" * 100 + ")")
    assert _balanced(network_cause(odd))
