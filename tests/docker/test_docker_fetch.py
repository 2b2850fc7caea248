"""`docker://` images into the client's store: the signature rule, digests over TLS, caching."""

from __future__ import annotations

import os
from pathlib import Path

import oci_images
import pytest
from docker_v2_server import RegistryState, V2Registry, self_signed_certificate

from registry.client.docker_fetch import fetch_docker_image
from registry.client.insecure import InsecureOptions
from registry.client.store import ImageStore
from registry.docker.errors import DockerError


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "store")


@pytest.fixture
def no_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))


def test_unsigned_docker_image_needs_insecure_image(sample_image, store, no_docker_config):
    with V2Registry(RegistryState({"tests/sample": sample_image.layout})) as registry:
        with pytest.raises(DockerError, match="--insecure-options=image") as caught:
            fetch_docker_image(store, f"docker://{registry.address}/tests/sample:v1")
        assert caught.value.reason == "insecure"
        assert registry.state.requests == []  # refused before any download
    assert store.list() == []


def test_fetch_imports_and_the_second_fetch_is_a_cache_hit(sample_image, store, no_docker_config,
                                                           tmp_path):
    insecure = InsecureOptions.parse("image")
    state = RegistryState({"tests/sample": sample_image.layout})
    with V2Registry(state) as registry:
        first = fetch_docker_image(store, f"docker://{registry.address}/tests/sample:v1",
                                   insecure=insecure)
        assert not first.cached
        served = len(state.requests)
        second = fetch_docker_image(store, f"docker://{registry.address}/tests/sample:v1",
                                    insecure=insecure)
        assert second.cached and second.image.id == first.image.id
        assert len(state.requests) == served  # nothing downloaded the second time
        refreshed = fetch_docker_image(store, f"docker://{registry.address}/tests/sample:v1",
                                       insecure=insecure, pull_policy="update")
        assert not refreshed.cached and refreshed.image.id == first.image.id
    image = first.image
    assert image.name == f"{registry.address.replace(':', '_')}/tests/sample"
    assert image.labels["version"] == "v1"
    assert [i.id for i in store.list()] == [image.id]
    assert os.listdir(os.path.join(store.directory, "tmp")) == []
    rendered = Path(store.render(image.id, tmp_path / "rendered"))
    assert (rendered / "rootfs" / "opq" / "new").read_text() == "new in upper\n"
    assert not (rendered / "rootfs" / "gone.txt").exists()
    assert (rendered / "rootfs" / "hl-link").read_text() == "original linked content\n"


def test_digest_over_plain_http_still_needs_insecure_image(sample_image, store, no_docker_config):
    digest = sample_image.manifest.digest
    with V2Registry(RegistryState({"tests/sample": sample_image.layout})) as registry:
        with pytest.raises(DockerError, match="not over verified TLS"):
            fetch_docker_image(store, f"docker://{registry.address}/tests/sample@{digest}")
    assert store.list() == []


def test_pull_policy_never_only_looks_in_the_store(store, no_docker_config):
    with pytest.raises(DockerError, match="pull-policy=never"):
        fetch_docker_image(store, "docker://127.0.0.1:9/none/such:v1",
                           insecure=InsecureOptions.parse("image"), pull_policy="never")


def test_digest_over_verified_tls_needs_no_insecure_option(sample_image, store, tmp_path,
                                                           no_docker_config):
    cert, key = self_signed_certificate(tmp_path)
    digest = sample_image.manifest.digest
    with V2Registry(RegistryState({"tests/sample": sample_image.layout}), tls=(cert, key)) as registry:
        result = fetch_docker_image(store, f"docker://{registry.address}/tests/sample@{digest}",
                                    ca_bundle=str(cert))
    assert not result.cached
    assert result.image.labels["version"] == digest.replace(":", "-")
    assert oci_images.rootfs_listing(result.image.path) == oci_images.SAMPLE_ROOTFS
    # The same registry's certificate is not trusted without the CA: refused, nothing stored.
    other = ImageStore(tmp_path / "other-store")
    with V2Registry(RegistryState({"tests/sample": sample_image.layout}), tls=(cert, key)) as registry:
        with pytest.raises(DockerError, match="cannot reach registry"):
            fetch_docker_image(other, f"docker://{registry.address}/tests/sample@{digest}")
    assert other.list() == []
