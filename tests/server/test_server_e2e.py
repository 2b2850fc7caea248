"""End to end through real processes: gunicorn serving, `pyrkt push`, `actool discover`, gpg.

Runs on SQLite + local storage and on PostgreSQL + S3 (moto's server over HTTP), and with two
registry processes sharing one PostgreSQL and one bucket.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from live_registry import LiveRegistry, actool_discover, s3_settings
from s3server import create_bucket
from server_images import build_aci

pytestmark = [pytest.mark.e2e]

NAME = "127.0.0.1/team/app"


def _backend_settings(kind, request, tmp_path_factory):  # type: ignore[no-untyped-def]
    if kind == "sqlite-local":
        return {}
    database_url = request.getfixturevalue("new_postgres_database")()
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = create_bucket(endpoint)
    return {"database_url": database_url,
            "storage": s3_settings(endpoint.url, bucket, endpoint.access_key, endpoint.secret_key,
                                   endpoint.region)}


@pytest.fixture(scope="module", params=["sqlite-local",
                                        pytest.param("postgres-s3", marks=pytest.mark.postgres)])
def registry(request, tmp_path_factory):  # type: ignore[no-untyped-def]
    settings = _backend_settings(request.param, request, tmp_path_factory)
    live = LiveRegistry(tmp_path_factory.mktemp(f"registry-{request.param}"), **settings)
    with live:
        yield live


def pyrkt_push(registry: LiveRegistry, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "registry.cli.main", "push", *map(str, args)],
                          env=registry.push_environ(), capture_output=True, text=True, timeout=300)


def gpg_verify(tmp_path: Path, keys: bytes, signature: bytes, image: Path) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700, exist_ok=True)
    (tmp_path / "keys.asc").write_bytes(keys)
    (tmp_path / "image.aci.asc").write_bytes(signature)
    env = dict(os.environ, GNUPGHOME=str(home))
    imported = subprocess.run(["gpg", "--batch", "--import", str(tmp_path / "keys.asc")],
                              env=env, capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    try:
        return subprocess.run(["gpg", "--batch", "--verify", str(tmp_path / "image.aci.asc"),
                               str(image)], env=env, capture_output=True, text=True)
    finally:  # the agent the import started: none outlives the test
        subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True)


def test_push_discover_download_verify(registry, actool, actool_validate, tmp_path):
    image = build_aci(tmp_path / "build", NAME, version="1.0")
    actool_validate(image)
    pushed = pyrkt_push(registry, image)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert "pushed 127.0.0.1/team/app:1.0 (linux/amd64)" in pushed.stdout

    urls = actool_discover(actool, registry, f"{NAME}:1.0")
    prefix = f"{registry.base_url}/_aci/{NAME}/1.0/linux/amd64/image"
    assert urls["aci"] == prefix + ".aci"
    assert urls["asc"] == prefix + ".aci.asc"
    assert urls["keys"].startswith(registry.base_url + "/_aci/")

    downloaded = tmp_path / "downloaded.aci"
    with requests.get(urls["aci"], stream=True, timeout=60) as response:
        assert response.status_code == 200
        with downloaded.open("wb") as out:
            for chunk in response.iter_content(1 << 16):
                out.write(chunk)
    assert downloaded.read_bytes() == image.read_bytes()
    signature = requests.get(urls["asc"], timeout=30)
    keys = requests.get(urls["keys"], timeout=30)
    assert signature.status_code == keys.status_code == 200
    assert keys.headers["Content-Type"].startswith("application/pgp-keys")

    good = gpg_verify(tmp_path, keys.content, signature.content, downloaded)
    assert good.returncode == 0, good.stderr
    assert "Good signature" in good.stderr

    flipped = tmp_path / "flipped.aci"
    data = bytearray(downloaded.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    bad = gpg_verify(tmp_path, keys.content, signature.content, flipped)
    assert bad.returncode != 0
    assert "BAD signature" in bad.stderr


def test_latest_and_http_caching_semantics(registry, actool, tmp_path):
    name = "127.0.0.1/team/cache"
    for version in ("1.0", "2.0"):
        image = build_aci(tmp_path / version, name, version=version)
        assert pyrkt_push(registry, image).returncode == 0
    newest = build_aci(tmp_path / "2.0", name, version="2.0")

    # No version: discovery asks for `latest`, which is the newest push until the owner moves it.
    urls = actool_discover(actool, registry, name)
    assert "/latest/" in urls["aci"]
    latest = requests.get(urls["aci"], timeout=30)
    assert latest.content == newest.read_bytes()
    assert "must-revalidate" in latest.headers["Cache-Control"]
    moved = registry.api("PUT", f"/repositories/{name}/-/latest", json={"version": "1.0"})
    assert moved.status_code == 200, moved.text
    assert requests.get(urls["aci"], timeout=30).content == (tmp_path / "1.0").joinpath(
        newest.name.replace("2.0", "1.0")).read_bytes()

    url = registry.url(f"/_aci/{name}/2.0/linux/amd64/image.aci")
    full = requests.get(url, timeout=30)
    etag = full.headers["ETag"]
    assert etag.strip('"').startswith("sha256:")
    assert full.headers["Last-Modified"] and "max-age" in full.headers["Cache-Control"]
    head = requests.head(url, timeout=30)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) == len(full.content)
    ranged = requests.get(url, headers={"Range": "bytes=10-99"}, timeout=30)
    assert ranged.status_code == 206
    assert ranged.content == full.content[10:100]
    assert ranged.headers["Content-Range"] == f"bytes 10-99/{len(full.content)}"
    cached = requests.get(url, headers={"If-None-Match": etag}, timeout=30)
    assert cached.status_code == 304 and cached.content == b""
    beyond = requests.get(url, headers={"Range": f"bytes={len(full.content) + 5}-"}, timeout=30)
    assert beyond.status_code == 416


@pytest.mark.postgres
def test_two_registry_processes_share_postgres_and_bucket(new_postgres_database, s3_endpoint,
                                                          tmp_path, actool):
    database_url = new_postgres_database()
    storage = s3_settings(s3_endpoint.url, create_bucket(s3_endpoint), s3_endpoint.access_key,
                          s3_endpoint.secret_key, s3_endpoint.region)
    first = LiveRegistry(tmp_path / "first", database_url=database_url, storage=storage, workers=1)
    second = LiveRegistry(tmp_path / "second", database_url=database_url, storage=storage,
                          workers=1, initialise=False)
    with first, second:
        image = build_aci(tmp_path / "build", "127.0.0.1/shared/app", version="3.1")
        assert pyrkt_push(first, image).returncode == 0
        urls = actool_discover(actool, second, "127.0.0.1/shared/app:3.1")
        assert urls["aci"].startswith(second.base_url)
        fetched = requests.get(urls["aci"], timeout=30)
        assert fetched.status_code == 200 and fetched.content == image.read_bytes()
        listed = second.api("GET", "/repositories/127.0.0.1/shared/app")
        assert [i["version"] for i in listed.json()["images"]] == ["3.1"]


def test_push_shows_server_errors_and_fails(registry, tmp_path):
    image = build_aci(tmp_path, NAME, version="9.0")
    env = dict(registry.push_environ(), PYRKT_TOKEN="pyrkt_wrong")
    wrong = subprocess.run([sys.executable, "-m", "registry.cli.main", "push", str(image)],
                           env=env, capture_output=True, text=True, timeout=120)
    assert wrong.returncode != 0
    assert "invalid credentials: unknown, expired or revoked token" in wrong.stderr
    taken = build_aci(tmp_path / "taken", NAME, version="1.0", payload=b"not the pushed 1.0\n")
    pyrkt_push(registry, build_aci(tmp_path / "first", NAME, version="1.0"))
    conflict = pyrkt_push(registry, taken)
    assert conflict.returncode != 0
    assert "already exists with another image" in conflict.stderr


def test_serve_printed_how_to_push_trust_and_fetch(registry):
    log = registry.log(tail=None)
    assert f"pyrkt push hello.aci --registry {registry.base_url}" in log
    assert "pyrkt trust --prefix 127.0.0.1/demo" in log
    assert f"actool discover --insecure --port={registry.port}" in log


def test_push_takes_credentials_from_the_client_auth_config(registry, tmp_path):
    import json

    config = tmp_path / "local-config"
    (config / "auth.d").mkdir(parents=True)
    (config / "auth.d" / "registry.json").write_text(json.dumps({
        "rktKind": "auth", "rktVersion": "v1", "domains": ["127.0.0.1"], "type": "basic",
        "credentials": {"user": "admin", "password": registry.token}}))
    image = build_aci(tmp_path, "127.0.0.1/team/authd", version="1.0")
    env = {k: v for k, v in registry.push_environ().items() if k != "PYRKT_TOKEN"}
    env.update(PYRKT_LOCAL_CONFIG=str(config), PYRKT_SYSTEM_CONFIG=str(tmp_path / "none"),
               XDG_CONFIG_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path))
    pushed = subprocess.run([sys.executable, "-m", "registry.cli.main", "push", str(image)],
                            env=env, capture_output=True, text=True, timeout=120)
    assert pushed.returncode == 0, pushed.stderr
    (config / "auth.d" / "registry.json").unlink()
    refused = subprocess.run([sys.executable, "-m", "registry.cli.main", "push", str(image)],
                             env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "no API token" in refused.stderr


def test_serve_dev_uses_flasks_server_with_the_same_app(tmp_path, actool):
    with LiveRegistry(tmp_path / "dev", dev=True) as dev:
        image = build_aci(tmp_path, "127.0.0.1/dev/app", version="0.1")
        assert pyrkt_push(dev, image).returncode == 0
        urls = actool_discover(actool, dev, "127.0.0.1/dev/app:0.1")
        assert requests.get(urls["aci"], timeout=30).content == image.read_bytes()
        assert "Werkzeug" in requests.get(urls["aci"], timeout=30).headers.get("Server", "")
