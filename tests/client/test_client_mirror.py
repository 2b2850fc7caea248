"""The pull-through mirror end to end: an upstream pyrkt registry behind a static discovery site
on loopback, a second registry mirroring its prefix, and the client pointed at the mirror by a
domains.d entry. The client verifies with the upstream's key; with upstream and site stopped the
mirror still serves what it has seen."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
import requests
from client_kit import ClientEnv, build_aci, discovery_page, host_labels
from live_registry import LiveRegistry
from static_site import StaticSite

pytestmark = [pytest.mark.e2e]

PREFIX = "localhost/apps"
NAME = f"{PREFIX}/hello"


def _push(registry: LiveRegistry, path, name: str) -> None:  # type: ignore[no-untyped-def]
    answer = registry.api("POST", f"/repositories/{name}/-/images", data=path.read_bytes())
    assert answer.status_code == 201, answer.text


def _expire(mirror: LiveRegistry) -> None:
    """Make every cached copy stale, as if upstream's max-age had passed."""
    with sqlite3.connect(mirror.data_dir / "registry.db") as db:
        db.execute("UPDATE mirrored_files SET fresh_until = ?",
                   ((datetime.now(UTC) - timedelta(hours=1)).isoformat(),))


def _cached(mirror: LiveRegistry, version: str) -> dict[str, str]:
    with sqlite3.connect(mirror.data_dir / "registry.db") as db:
        fetched, fresh = db.execute(
            "SELECT fetched_at, fresh_until FROM mirrored_files WHERE path LIKE ?",
            (f"aci/{NAME}/{version}/%/aci",)).fetchone()
    return {"fetched_at": fetched, "fresh_until": fresh}


def _trusted_client(root, mirror: LiveRegistry) -> ClientEnv:  # type: ignore[no-untyped-def]
    env = ClientEnv(root)
    env.domain_config("localhost", mirror=mirror.url("/_mirror"), insecureOptions=["http"])
    env.domain_config("127.0.0.1", insecureOptions=["http"])
    trusted = env.run(["trust"], "--prefix", PREFIX, input="yes\n")
    assert trusted.exit_code == 0, trusted.output
    return env


def _fetch(env: ClientEnv, *args: str) -> str:
    result = env.run(["fetch"], "--full", *args)
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def test_mirror_between_upstream_and_client(tmp_path):
    site_root = tmp_path / "site"
    with LiveRegistry(tmp_path / "upstream", workers=1,
                      env={"PYRKT_REGISTRY_DOMAINS": "localhost"}) as upstream, \
            LiveRegistry(tmp_path / "mirror", workers=2,
                         env={"PYRKT_REGISTRY_SIGNING_KEY": ""}) as mirror:
        first = tmp_path / "images" / "hello-1.aci"
        first_id = build_aci(first, NAME, host_labels("1.0"))
        _push(upstream, first, NAME)
        # The static site names the upstream registry's URL layout for the whole prefix.
        (site_root / "apps").mkdir(parents=True)
        (site_root / "apps" / "index.html").write_text(discovery_page(
            ("ac-discovery", PREFIX, upstream.url("/_aci/{name}/{version}/{os}/{arch}/image.{ext}")),
            ("ac-discovery-pubkeys", PREFIX, upstream.url("/_aci/pubkeys.gpg"))))
        site = StaticSite(site_root).__enter__()
        try:
            added = mirror.cli("mirror", "add", PREFIX, "--allow-http", "--port", str(site.port))
            assert f'"mirror": "{mirror.base_url}/_mirror"' in added.stdout
            client = _trusted_client(tmp_path / "client", mirror)
            # The key the client trusted is the upstream's, served by the mirror unchanged.
            upstream_keys = requests.get(upstream.url("/_aci/pubkeys.gpg"), timeout=10).text
            mirror_keys = requests.get(mirror.url(f"/_aci/pubkeys/{PREFIX}/pubkeys.gpg"),
                                       timeout=10).text
            assert mirror_keys == upstream_keys
            assert requests.get(mirror.url("/_aci/pubkeys.gpg"), timeout=10).text != upstream_keys
            assert _fetch(client, f"{NAME}:1.0") == first_id
            # Stored and served unchanged: the ACI's bytes and the upstream's own signature.
            labels = host_labels("1.0")
            path = f"/_aci/{NAME}/1.0/{labels['os']}/{labels['arch']}/image.aci"
            for suffix in ("", ".asc"):
                ours = requests.get(mirror.url(path + suffix), timeout=30)
                theirs = requests.get(upstream.url(path + suffix), timeout=30)
                assert ours.status_code == 200 and hashlib.sha256(ours.content).digest() == \
                    hashlib.sha256(theirs.content).digest()
                if not suffix:
                    ours_aci = ours.content
            # `latest` follows upstream: its max-age=0 makes the mirror revalidate every time.
            second = tmp_path / "images" / "hello-2.aci"
            second_id = build_aci(second, NAME, host_labels("2.0"))
            assert _fetch(client, NAME) == first_id
            _push(upstream, second, NAME)
            assert _fetch(client, "--pull-policy", "update", NAME) == second_id
            # A stale versioned copy is revalidated with If-None-Match: upstream answers 304,
            # so the copy is fresh again without being fetched again (fetched_at unchanged).
            before = _cached(mirror, "1.0")
            _expire(mirror)
            again = requests.get(mirror.url(path), timeout=30)
            assert again.status_code == 200 and again.content == ours_aci
            after = _cached(mirror, "1.0")
            assert after["fetched_at"] == before["fetched_at"]
            fresh_until = datetime.fromisoformat(after["fresh_until"])
            assert (fresh_until.replace(tzinfo=fresh_until.tzinfo or UTC) > datetime.now(UTC))
        finally:
            site.__exit__(None, None, None)
        upstream.stop()
        # Upstream and its discovery site are gone: a new host still trusts and fetches what
        # the mirror has seen, even after the copies went stale.
        _expire(mirror)
        offline = _trusted_client(tmp_path / "offline", mirror)
        assert _fetch(offline, f"{NAME}:1.0") == first_id
        assert _fetch(offline, "--pull-policy", "update", NAME) == second_id  # latest, as last seen
        # 2.0 was only ever asked for as `latest`: by its version it is not cached.
        missing = requests.get(mirror.url(path.replace("/1.0/", "/2.0/")), timeout=60)
        assert missing.status_code == 502 and "cannot be reached" in missing.text
        listed = mirror.api("GET", "/mirrors").json()["mirrors"]
        assert listed[0]["prefix"] == PREFIX and listed[0]["files"] >= 4


def test_mirror_refuses_hosted_domains_and_bad_prefixes(tmp_path):
    with LiveRegistry(tmp_path / "mirror", workers=1) as mirror:
        hosted = mirror.cli("mirror", "add", "127.0.0.1/team", check=False)
        assert hosted.returncode != 0 and "hosts itself" in hosted.stderr
        bad = mirror.cli("mirror", "add", "Not A Name", check=False)
        assert bad.returncode != 0 and "Traceback" not in bad.stderr
        assert mirror.cli("mirror", "add", "example.org/apps").returncode == 0
        again = mirror.cli("mirror", "add", "example.org/apps", check=False)
        assert again.returncode != 0 and "already" in again.stderr
        # Not cached and upstream unreachable: a clear 502, not a crash.
        answer = requests.get(mirror.url("/_aci/example.org/apps/x/1.0/linux/amd64/image.aci"),
                              timeout=60)
        assert answer.status_code == 502 and "cannot be reached" in answer.text
