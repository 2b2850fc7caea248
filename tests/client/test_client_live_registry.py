"""End to end against a live pyrkt registry (gunicorn on 127.0.0.1): trust via discovered keys,
fetch by name with and without version and labels, latest, a dependency chain, the cache with the
server stopped, 304 revalidation, and resuming after the server is killed mid-download."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from client_kit import ClientEnv, build_aci, host_labels
from live_registry import LiveRegistry

from registry.client import FetchOptions, ImageStore, fetch_image
from registry.client.errors import FetchError
from registry.client.insecure import InsecureOptions

pytestmark = [pytest.mark.e2e]

TEAM = "127.0.0.1/e2e"


def _push(registry: LiveRegistry, aci: Path) -> None:
    with aci.open("rb") as body:
        answer = registry.api("POST", f"/repositories/{_name_of(aci)}/-/images", data=body,
                              headers={"Content-Type": "application/octet-stream"})
    assert answer.status_code in (200, 201), answer.text


def _name_of(aci: Path) -> str:
    return aci.parent.name.replace("__", "/")


def _image(tmp_path: Path, name: str, version: str, files: dict | None = None, **extra) -> tuple[Path, str]:
    path = tmp_path / name.replace("/", "__") / f"{version}.aci"
    image_id = build_aci(path, name, host_labels(version), files, **extra)
    return path, image_id


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with LiveRegistry(tmp_path_factory.mktemp("registry"), workers=1) as live:
        yield live


@pytest.fixture()
def client(env: ClientEnv, registry: LiveRegistry) -> ClientEnv:
    env.domain_config(registry.domain, port=registry.port, insecureOptions=["http"])
    trusted = env.run(["trust"], "--prefix", TEAM, input="yes\n")
    assert trusted.exit_code == 0, trusted.output
    assert "Added key for prefix" in trusted.output
    return env


def _fetch(env: ClientEnv, *args: str) -> str:
    result = env.run(["fetch"], "--full", *args)
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def test_fetch_by_name_version_labels_and_latest(client: ClientEnv, registry, tmp_path) -> None:
    name = f"{TEAM}/app"
    first, first_id = _image(tmp_path, name, "1.0")
    second, second_id = _image(tmp_path, name, "2.0", {"v": "2"})
    _push(registry, first)
    _push(registry, second)
    labels = host_labels()
    assert _fetch(client, f"{name}:1.0") == first_id
    assert _fetch(client, f"{name}:1.0,os={labels['os']},arch={labels['arch']}") == first_id
    assert _fetch(client, "--pull-policy", "update", name) == second_id  # latest: the newest
    refused = client.run(["fetch"], f"{name}:1.0,os=linux,arch=s390x")
    assert refused.exit_code != 0
    assert {i.id for i in client.store().list()} == {first_id, second_id}


def test_dependency_chain_is_fetched_and_renders(client: ClientEnv, registry, tmp_path) -> None:
    base, base_id = _image(tmp_path, f"{TEAM}/base", "1.0", {"etc/base": "base"})
    middle, middle_id = _image(tmp_path, f"{TEAM}/middle", "1.0", {"etc/middle": "m"},
                               dependencies=[{"imageName": f"{TEAM}/base", "labels": [
                                   {"name": "version", "value": "1.0"}]}])
    app, app_id = _image(tmp_path, f"{TEAM}/top", "1.0", {"app": "top"},
                         dependencies=[{"imageName": f"{TEAM}/middle", "imageID": middle_id}])
    for aci in (base, middle, app):
        _push(registry, aci)
    assert _fetch(client, f"{TEAM}/top:1.0") == app_id
    assert {i.id for i in client.store().list()} == {base_id, middle_id, app_id}
    rendered = client.run(["image", "render"], app_id, str(tmp_path / "out"))
    assert rendered.exit_code == 0, rendered.output
    rootfs = tmp_path / "out" / "rootfs"
    assert (rootfs / "etc/base").read_text() == "base" and (rootfs / "app").read_text() == "top"


def test_cache_without_network_and_304(client: ClientEnv, registry, tmp_path) -> None:
    name = f"{TEAM}/cached"
    aci, image_id = _image(tmp_path, name, "1.0")
    _push(registry, aci)
    assert _fetch(client, f"{name}:1.0") == image_id
    # a versioned URL is cacheable for a while (max-age): no request for the image at all
    fresh = client.run(["fetch"], "--pull-policy", "update", f"{name}:1.0")
    assert fresh.exit_code == 0 and "using cached image" in fresh.output
    # `latest` must be revalidated: the ETag gives a 304 and the stored copy is used
    assert _fetch(client, "--pull-policy", "update", name) == image_id
    again = client.run(["fetch"], "--pull-policy", "update", name)
    assert again.exit_code == 0, again.output
    assert "not modified (HTTP 304)" in again.output
    assert again.output.strip().splitlines()[-1] == image_id[:39]


def test_cache_hit_with_the_registry_stopped(env: ClientEnv, tmp_path: Path) -> None:
    with LiveRegistry(tmp_path / "short-lived", workers=1) as registry:
        env.domain_config(registry.domain, port=registry.port, insecureOptions=["http"])
        assert env.run(["trust"], "--prefix", TEAM, "--skip-fingerprint-review").exit_code == 0
        aci, image_id = _image(tmp_path, f"{TEAM}/offline", "1.0")
        _push(registry, aci)
        assert _fetch(env, f"{TEAM}/offline:1.0") == image_id
    assert _fetch(env, f"{TEAM}/offline:1.0") == image_id  # no server: the store answers
    gone = env.run(["fetch"], "--pull-policy", "update", f"{TEAM}/offline:1.0")
    assert gone.exit_code != 0 and "discovery failed" in gone.output


def test_resume_after_the_registry_is_killed_mid_download(env: ClientEnv, tmp_path: Path) -> None:
    data_dir = tmp_path / "killed"
    registry = LiveRegistry(data_dir, workers=1).start()
    try:
        env.domain_config(registry.domain, port=registry.port, insecureOptions=["http"])
        assert env.run(["trust"], "--prefix", TEAM, "--skip-fingerprint-review").exit_code == 0
        aci, image_id = _image(tmp_path, f"{TEAM}/big", "1.0", {"blob": os.urandom(24 << 20)})
        _push(registry, aci)
        store = ImageStore(env.store_dir)

        class KillOnFirstChunk:
            def __init__(self, label: str, total: int | None) -> None:
                self.seen = 0

            def update(self, count: int) -> None:
                self.seen += count
                if registry.process is not None:
                    os.killpg(registry.process.pid, signal.SIGKILL)
                    registry.process.wait()
                    registry.process = None

            def close(self) -> None:
                pass

        options = FetchOptions(insecure=InsecureOptions.parse("http"), config_dirs=env.dirs(),
                               progress=KillOnFirstChunk)
        with pytest.raises(FetchError, match="interrupted"):
            fetch_image(f"{TEAM}/big:1.0", store, options)
        assert store.list() == []
        kept = [p for p in (env.store_dir / "tmp").iterdir() if p.suffix == ".aci"]
        assert len(kept) == 1 and 0 < kept[0].stat().st_size < aci.stat().st_size

        registry = LiveRegistry(data_dir, workers=1, initialise=False, port=registry.port).start()
        resumed = fetch_image(f"{TEAM}/big:1.0", store, FetchOptions(
            insecure=InsecureOptions.parse("http"), config_dirs=env.dirs()))
        assert resumed.id == image_id
        assert resumed.path.read_bytes() == aci.read_bytes()
        log = registry.log(tail=None)
        assert " 206 " in log  # the second request was a range request
    finally:
        registry.stop()
