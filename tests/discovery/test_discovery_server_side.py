"""The server side of discovery: meta tags, the URL layout, and appc's own `actool discover`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from static_site import StaticSite

from registry.discovery import (
    FLASK_ACI_RULE,
    FLASK_PREFIX_PUBKEYS_RULE,
    FLASK_PUBKEYS_RULE,
    AciLocation,
    aci_path,
    aci_template,
    discover_endpoints,
    discover_pubkeys,
    discovery_document,
    meta_tags,
    parse_aci_path,
    parse_app_string,
    parse_meta_tags,
    pubkeys_url,
    render_template,
)


def test_meta_tags_are_escaped_and_parse_back() -> None:
    template = 'https://r.example/_aci/{name}/x"><script>/{version}/{os}/{arch}/image.{ext}?a=1&b=2'
    html = meta_tags("r.example/team", template, "https://r.example/keys?x=<1>")
    assert "<script>" not in html and '"><' not in html
    assert "&amp;b=2" in html and "&lt;1&gt;" in html
    [aci, keys] = parse_meta_tags(discovery_document(html))
    assert (aci.kind, aci.prefix, aci.url) == ("ac-discovery", "r.example/team", template)
    assert (keys.kind, keys.prefix, keys.url) == ("ac-discovery-pubkeys", "r.example/team",
                                                  "https://r.example/keys?x=<1>")


def test_meta_tags_without_pubkeys_and_bad_parts() -> None:
    assert "ac-discovery-pubkeys" not in meta_tags("a.example", "https://a.example/{name}.{ext}", None)
    for prefix, template in [("", "https://t"), ("a b", "https://t"), ("a", "https://t/ x")]:
        with pytest.raises(ValueError, match="whitespace"):
            meta_tags(prefix, template, None)


def test_layout_templates_and_paths_agree() -> None:
    template = aci_template("http://127.0.0.1:8080/")
    assert template == "http://127.0.0.1:8080/_aci/{name}/{version}/{os}/{arch}/image.{ext}"
    values = {"name": "127.0.0.1/team/app", "version": "1.0", "os": "linux", "arch": "amd64"}
    for ext in ("aci", "aci.asc"):
        rendered = render_template(template, {**values, "ext": ext})
        path = aci_path(values["name"], "1.0", "linux", "amd64", ext)
        assert rendered == "http://127.0.0.1:8080" + path
        assert parse_aci_path(path) == AciLocation(values["name"], "1.0", "linux", "amd64", ext)
    assert pubkeys_url("https://r.example/base/") == "https://r.example/base/_aci/pubkeys.gpg"
    assert pubkeys_url("https://r.example", "r.example/team/") \
        == "https://r.example/_aci/pubkeys/r.example/team/pubkeys.gpg"
    assert parse_aci_path("/_aci/pubkeys.gpg") is None
    assert parse_aci_path("/team/app") is None


@pytest.mark.parametrize("bad", ["ftp://x", "r.example", "https://r.example/?q=1"])
def test_layout_rejects_bad_base_urls(bad: str) -> None:
    with pytest.raises(ValueError, match="base URL"):
        aci_template(bad)


def test_layout_rejects_slashes_in_labels() -> None:
    with pytest.raises(ValueError, match="version"):
        aci_path("a.example/app", "1/2", "linux", "amd64")
    with pytest.raises(ValueError, match="ext"):
        aci_path("a.example/app", "1", "linux", "amd64", "tar")


def test_flask_rules_route_names_with_slashes() -> None:
    from werkzeug.routing import Map, Rule

    urls = Map([Rule(FLASK_ACI_RULE, endpoint="aci"), Rule(FLASK_PUBKEYS_RULE, endpoint="keys"),
                Rule(FLASK_PREFIX_PUBKEYS_RULE, endpoint="prefix-keys"),
                Rule("/<path:page>", endpoint="page")]).bind("r.example")
    path = aci_path("r.example/a/b.c/d", "1.0.0-rc1", "linux", "aarch64", "aci.asc")
    assert urls.match(path) == ("aci", {"name": "r.example/a/b.c/d", "version": "1.0.0-rc1",
                                        "os": "linux", "arch": "aarch64", "ext": "aci.asc"})
    assert urls.match("/_aci/pubkeys.gpg") == ("keys", {})
    assert urls.match("/_aci/pubkeys/r.example/a/pubkeys.gpg") == ("prefix-keys",
                                                                   {"prefix": "r.example/a"})
    assert urls.match("/a/b") == ("page", {"page": "a/b"})


def _publish(root: Path, base: str, prefix: str, page_paths: list[str]) -> None:
    """Write the pages a pyrkt server would serve for `prefix`, using only the server-side API."""
    tags = meta_tags(prefix, aci_template(base), pubkeys_url(base))
    for page in page_paths:
        folder = root / page if page else root
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "index.html").write_text(discovery_document(tags, title=prefix))


@pytest.mark.e2e
def test_actool_discover_reads_our_meta_tags(actool: str, tmp_path: Path) -> None:
    with StaticSite(tmp_path) as site:
        base = site.url
        _publish(tmp_path, base, "127.0.0.1/team", ["team/app", "team", ""])
        result = subprocess.run(
            [actool, "discover", "--json", "--insecure", f"--port={site.port}",
             "127.0.0.1/team/app:1.2.3,os=linux,arch=amd64"],
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        found = json.loads(result.stdout)
        name = "127.0.0.1/team/app"
        assert found["ACIEndpoints"] == [{
            "ACI": f"{base}/_aci/{name}/1.2.3/linux/amd64/image.aci",
            "ASC": f"{base}/_aci/{name}/1.2.3/linux/amd64/image.aci.asc"}]
        assert found["PublicKeys"] == [f"{base}/_aci/pubkeys.gpg"]

        # Our client finds exactly what actool found on the same pages.
        ref = parse_app_string(f"{name}:1.2.3", os_name="linux", arch="amd64")
        ours = discover_endpoints(ref, allow_http=True, port=site.port)
        assert [{"ACI": e.aci, "ASC": e.asc} for e in ours.endpoints] == found["ACIEndpoints"]
        assert discover_pubkeys(ref, allow_http=True, port=site.port).pubkeys == found["PublicKeys"]


@pytest.mark.e2e
def test_actool_discover_plain_output_and_latest(actool: str, tmp_path: Path) -> None:
    with StaticSite(tmp_path) as site:
        _publish(tmp_path, site.url, "127.0.0.1", [""])  # only the domain root: actool walks up
        result = subprocess.run(
            [actool, "discover", "--insecure", f"--port={site.port}",
             "127.0.0.1/deep/er/app,os=linux,arch=arm64"],
            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{site.url}/_aci/127.0.0.1/deep/er/app/latest/linux/arm64/image.aci" in result.stdout
    assert f"{site.url}/_aci/pubkeys.gpg" in result.stdout


_no_space = st.text(st.characters(blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs"),
                                  blacklist_characters="\x85\x1c\x1d\x1e\x1f"),
                    min_size=1, max_size=30)


@given(prefix=_no_space, template=_no_space, keys=st.none() | _no_space)
def test_meta_tags_round_trip_through_html(prefix: str, template: str, keys: str | None) -> None:
    tags = parse_meta_tags(discovery_document(meta_tags(prefix, template, keys)))
    expected = [("ac-discovery", prefix, template)]
    if keys is not None:
        expected.append(("ac-discovery-pubkeys", prefix, keys))
    assert [(t.kind, t.prefix, t.url) for t in tags] == expected
