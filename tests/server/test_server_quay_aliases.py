"""Moving from Quay: a static discovery page written with Quay's templates, pointed at a live pyrkt
registry, keeps working for `pyrkt trust`/`fetch` and appc's `actool discover`.

The page is a plain file on a separate web server (tests/static_site.py) holding the seed's own
meta tags with quay.io's host replaced by the registry's:

    <meta name="ac-discovery" content="PREFIX http://REGISTRY/c1/aci/{name}/{version}/{ext}/{os}/{arch}/">
    <meta name="ac-discovery-pubkeys" content="PREFIX http://REGISTRY/aci-signing-key">
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from live_registry import LiveRegistry
from server_images import build_aci
from static_site import StaticSite

pytestmark = [pytest.mark.e2e]

NAME = "127.0.0.1/team/app"
SECRET = "127.0.0.1/team/secret"
# The seed's meta tags (Quay's layout), host replaced.
QUAY_TAGS = """<meta
  name="ac-discovery"
  content="127.0.0.1/team {base}/c1/aci/{{name}}/{{version}}/{{ext}}/{{os}}/{{arch}}/">
<meta
  name="ac-discovery-pubkeys"
  content="127.0.0.1/team {base}/aci-signing-key">"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory):  # type: ignore[no-untyped-def]
    with LiveRegistry(tmp_path_factory.mktemp("quay-registry")) as live:
        build = tmp_path_factory.mktemp("quay-build")
        for name, public in ((NAME, "1"), (SECRET, "0")):
            image = build_aci(build, name, version="1.0")
            with image.open("rb") as body:
                pushed = live.api("POST", f"/repositories/{name}/-/images",
                                  params={"public": public}, data=body,
                                  headers={"Content-Type": "application/octet-stream"})
            assert pushed.status_code in (200, 201), pushed.text
        yield live


@pytest.fixture()
def quay_page(tmp_path: Path, registry: LiveRegistry):  # type: ignore[no-untyped-def]
    root = tmp_path / "www"
    (root / "team").mkdir(parents=True)
    (root / "team" / "index.html").write_text(
        "<!DOCTYPE html><html><head>\n" + QUAY_TAGS.format(base=registry.base_url)
        + "\n</head><body>moved from Quay</body></html>\n")
    with StaticSite(root) as site:
        yield site


def _pyrkt(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    client = ["--dir", str(tmp_path / "store"), "--local-config", str(tmp_path / "etc"),
              "--user-config", str(tmp_path / "user"), "--system-config", str(tmp_path / "sys")]
    return subprocess.run([sys.executable, "-m", "registry.cli.main", args[0], *client, *args[1:]],
                          capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if not k.startswith("PYRKT_")})


def test_pyrkt_trusts_and_fetches_through_a_quay_discovery_page(quay_page, registry,
                                                                tmp_path: Path) -> None:
    port = str(quay_page.port)
    trusted = _pyrkt(tmp_path, "trust", "--prefix", "127.0.0.1/team", "--insecure-allow-http",
                     f"--port={port}", "--skip-fingerprint-review")
    assert trusted.returncode == 0, trusted.stderr
    assert f"{registry.base_url}/aci-signing-key" in trusted.stderr
    fetched = _pyrkt(tmp_path, "fetch", "--insecure-options=http", f"--port={port}", "--full",
                     f"{NAME}:1.0")
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.strip().startswith("sha512-")
    served = registry.log(tail=None)
    assert f"/c1/aci/{NAME}/1.0/aci.asc/linux/amd64/" in served
    assert f"/c1/aci/{NAME}/1.0/aci/linux/amd64/" in served


def test_actool_discovers_quay_urls_and_they_serve_the_native_files(quay_page, registry, actool,
                                                                    tmp_path: Path) -> None:
    result = subprocess.run([actool, "discover", "--insecure", f"--port={quay_page.port}",
                             f"{NAME}:1.0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    quay = f"{registry.base_url}/c1/aci/{NAME}/1.0"
    assert f"ACI: {quay}/aci/linux/amd64/, ASC: {quay}/aci.asc/linux/amd64/" in result.stdout
    assert f"PublicKeys: {registry.base_url}/aci-signing-key" in result.stdout

    native = f"{registry.base_url}/_aci/{NAME}/1.0/linux/amd64/image.aci"
    for alias, original in ((f"{quay}/aci/linux/amd64/", native),
                            (f"{quay}/aci.asc/linux/amd64/", native + ".asc"),
                            (f"{quay}/sig/linux/amd64/", native + ".asc"),
                            (f"{registry.base_url}/aci-signing-key",
                             f"{registry.base_url}/_aci/pubkeys.gpg")):
        got, want = requests.get(alias, timeout=30), requests.get(original, timeout=30)
        assert got.status_code == want.status_code == 200, alias
        assert got.content == want.content, alias
        for header in ("Content-Type", "ETag", "Cache-Control", "Last-Modified"):
            assert got.headers.get(header) == want.headers.get(header), (alias, header)
        again = requests.get(alias, headers={"If-None-Match": got.headers["ETag"]}, timeout=30)
        assert again.status_code == 304, alias
    ranged = requests.get(f"{quay}/aci/linux/amd64/", headers={"Range": "bytes=0-9"}, timeout=30)
    assert ranged.status_code == 206 and len(ranged.content) == 10


def test_quay_paths_keep_the_access_rules(registry) -> None:
    quay = f"{registry.base_url}/c1/aci/{SECRET}/1.0"
    assert requests.get(f"{quay}/aci/linux/amd64/", timeout=30).status_code == 404
    assert requests.get(f"{quay}/aci.asc/linux/amd64/", timeout=30).status_code == 404
    native = requests.get(f"{registry.base_url}/_aci/{SECRET}/1.0/linux/amd64/image.aci",
                          timeout=30)
    assert native.status_code == 404
    auth = {"Authorization": f"Bearer {registry.token}"}
    allowed = requests.get(f"{quay}/aci/linux/amd64/", headers=auth, timeout=30)
    assert allowed.status_code == 200 and allowed.headers["Cache-Control"].startswith("private")
    assert requests.get(f"{registry.base_url}/c1/aci/{NAME}/1.0/tar/linux/amd64/",
                        timeout=30).status_code == 404
