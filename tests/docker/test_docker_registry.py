"""docker:// sources: the v2 API with the bearer-token flow, digests, indexes, hostile answers."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import oci_images
import pytest
from docker_v2_server import RegistryState, V2Registry

from registry.docker.convert import ConvertOptions, convert
from registry.docker.errors import DockerError


@pytest.fixture
def docker_config(tmp_path: Path) -> Path:
    """An empty docker config so the developer's own ~/.docker never leaks into a test."""
    path = tmp_path / "docker-config.json"
    path.write_text("{}")
    return path


def _options(docker_config: Path, **kw) -> ConvertOptions:
    return ConvertOptions(docker_config=docker_config, **kw)


def test_anonymous_pull_by_tag(sample_image, out_dir, docker_config, actool_validate):
    with V2Registry(RegistryState({"tests/sample": sample_image.layout})) as registry:
        [result] = convert(f"docker://{registry.address}/tests/sample:v1", out_dir,
                           _options(docker_config))
    assert result.path == out_dir / "tests-sample-v1.aci"
    assert oci_images.rootfs_listing(result.path) == oci_images.SAMPLE_ROOTFS
    manifest = result.manifest
    host = registry.address.replace(":", "_")  # as docker2aci v0.17.2 (Go) sanitizes it
    assert manifest["name"] == f"{host}/tests/sample"
    notes = {a["name"]: a["value"] for a in manifest["annotations"]}
    # docker2aci v0.17.2's v2.2 annotations, with its values (lib/internal/internal.go).
    assert notes == {
        "author": "pyrkt tests <tests@example.com>",
        "created": "2024-05-06T07:08:09.123456789Z",  # the config's string, as it is
        "appc.io/docker/originalname": f"{registry.address}/tests/sample:v1",
        "appc.io/docker/registryurl": registry.address,
        "appc.io/docker/repository": "tests/sample",
        "appc.io/docker/imageid": sample_image.layers[-1].digest,  # the top layer's digest
        "appc.io/docker/manifesthash": sample_image.manifest.digest,
        "appc.io/docker/entrypoint": '["/bin/hello"]',
        "appc.io/docker/cmd": '["first","second"]',
    }
    assert "appc.io/docker/tag" not in notes  # the v2.2 path writes none
    assert manifest["app"]["userLabels"] == {"org.opencontainers.image.source":
                                             "https://example.com/src"}
    actool_validate(result.path)


def test_bearer_token_flow_with_docker_config_credentials(sample_image, out_dir, tmp_path):
    config = tmp_path / "config.json"
    state = RegistryState({"tests/sample": sample_image.layout}, users={"alice": "s3cret"})
    with V2Registry(state) as registry:
        auth = base64.b64encode(b"alice:s3cret").decode()
        config.write_text(json.dumps({"auths": {registry.address: {"auth": auth}}}))
        [result] = convert(f"docker://{registry.address}/tests/sample:v1", out_dir,
                           ConvertOptions(docker_config=config))
    assert oci_images.rootfs_listing(result.path) == oci_images.SAMPLE_ROOTFS
    assert any(p.startswith("/token?") for p in state.requests)
    assert state.tokens


def test_bearer_flow_refuses_wrong_or_missing_credentials(sample_image, out_dir, tmp_path,
                                                          docker_config):
    state = RegistryState({"tests/sample": sample_image.layout}, users={"alice": "s3cret"})
    with V2Registry(state) as registry:
        with pytest.raises(DockerError, match="anonymous access") as caught:
            convert(f"docker://{registry.address}/tests/sample:v1", out_dir,
                    _options(docker_config))
        assert caught.value.reason == "unauthorized"
        wrong = tmp_path / "wrong.json"
        wrong.write_text(json.dumps({"auths": {f"https://{registry.address}": {
            "username": "alice", "password": "nope"}}}))
        with pytest.raises(DockerError, match="stored credentials"):
            convert(f"docker://{registry.address}/tests/sample:v1", out_dir,
                    ConvertOptions(docker_config=wrong))
    assert list(out_dir.iterdir()) == []


def test_anonymous_token(sample_image, out_dir, docker_config):
    state = RegistryState({"tests/sample": sample_image.layout}, users={}, anonymous_pull=True)
    with V2Registry(state) as registry:
        [result] = convert(f"docker://{registry.address}/tests/sample:v1", out_dir,
                           _options(docker_config))
    assert result.path.exists()


def test_pull_by_digest(sample_image, out_dir, docker_config):
    digest = sample_image.manifest.digest
    with V2Registry(RegistryState({"tests/sample": sample_image.layout})) as registry:
        [result] = convert(f"docker://{registry.address}/tests/sample@{digest}", out_dir,
                           _options(docker_config))
    assert result.path.name == f"tests-sample-{digest.replace(':', '-')}.aci"
    assert {"name": "version", "value": digest.replace(":", "-")} in result.manifest["labels"]


def test_manifest_list_resolves_to_the_host_platform(sample_image, tmp_path, out_dir,
                                                      docker_config):
    layout = oci_images.multi_platform_copy(sample_image, tmp_path / "multi", tag="multi",
                                            other_architecture="ppc64le")
    with V2Registry(RegistryState({"tests/sample": layout})) as registry:
        [result] = convert(f"docker://{registry.address}/tests/sample:multi", out_dir,
                           _options(docker_config))
    assert oci_images.rootfs_listing(result.path) == oci_images.SAMPLE_ROOTFS


def test_corrupt_blob_from_the_registry(sample_image, out_dir, docker_config):
    state = RegistryState({"tests/sample": sample_image.layout},
                          corrupt_blobs={sample_image.layers[0].digest})
    with V2Registry(state) as registry, pytest.raises(DockerError, match="digest mismatch") as caught:
        convert(f"docker://{registry.address}/tests/sample:v1", out_dir, _options(docker_config))
    assert caught.value.reason == "digest-mismatch"
    assert list(out_dir.iterdir()) == []


def test_oversized_manifest_from_the_registry(sample_image, out_dir, docker_config):
    state = RegistryState({"tests/sample": sample_image.layout}, oversized_manifests=True)
    with V2Registry(state) as registry, pytest.raises(DockerError, match="larger than") as caught:
        convert(f"docker://{registry.address}/tests/sample:v1", out_dir, _options(docker_config))
    assert caught.value.reason == "too-large"
    assert list(out_dir.iterdir()) == []


def test_unknown_repository_and_tag(sample_image, out_dir, docker_config):
    with V2Registry(RegistryState({"tests/sample": sample_image.layout})) as registry:
        for name in ("tests/other:v1", "tests/sample:nope"):
            with pytest.raises(DockerError, match="not found") as caught:
                convert(f"docker://{registry.address}/{name}", out_dir, _options(docker_config))
            assert caught.value.reason == "not-found"


def test_wrong_digest_in_reference(sample_image, out_dir, docker_config):
    wrong = "sha256:" + "ab" * 32
    with V2Registry(RegistryState({"tests/sample": sample_image.layout})) as registry:
        with pytest.raises(DockerError, match="not found"):
            convert(f"docker://{registry.address}/tests/sample@{wrong}", out_dir,
                    _options(docker_config))
