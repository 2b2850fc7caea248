"""The same /v2/ round trip on S3 storage (moto's server over HTTP; with PostgreSQL too when
CI provides it), chunked uploads and the appc offer there, and docker2aci's own
registry client (`docker://`) pulling from our registry."""

from __future__ import annotations

import json
from collections.abc import Iterator

import oci_images
import pytest
import requests
from live_registry import LiveRegistry, s3_settings
from s3server import (
    S3Endpoint,
    create_bucket,
    s3_endpoint,  # noqa: F401 - the session fixture
)
from v2_client import V2, sha256, skopeo

from registry.docker.convert import ConvertOptions, convert

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module", params=["sqlite-s3",
                                        pytest.param("postgres-s3", marks=pytest.mark.postgres)])
def s3_registry(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                s3_endpoint: S3Endpoint) -> Iterator[tuple[LiveRegistry, str]]:  # noqa: F811
    bucket = create_bucket(s3_endpoint)
    storage = s3_settings(s3_endpoint.url, bucket, s3_endpoint.access_key,
                          s3_endpoint.secret_key, s3_endpoint.region)
    database = request.getfixturevalue("postgres_url") if request.param == "postgres-s3" \
        else None
    with LiveRegistry(tmp_path_factory.mktemp("oci-s3"), storage=storage,
                      database_url=database) as live:
        yield live, bucket


def test_push_and_pull_on_s3(s3_registry, s3_endpoint: S3Endpoint,  # noqa: F811
                             sample_image: oci_images.OCIImage, tmp_path,
                             actool_validate) -> None:
    registry, bucket = s3_registry
    target = f"docker://127.0.0.1:{registry.port}/team/s3:v1"
    pushed = skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds",
                    f"admin:{registry.token}", f"oci:{sample_image.layout}:v1", target)
    assert pushed.returncode == 0, pushed.stderr + registry.log()
    keys = {o["Key"] for o in s3_endpoint.client().list_objects_v2(Bucket=bucket)
            .get("Contents", [])}
    for blob in oci_images.iter_blobs(sample_image):
        hexdigest = blob.digest.split(":", 1)[1]
        assert any(k.endswith(f"oci/blobs/sha256/{hexdigest[:2]}/{hexdigest}") for k in keys)
    out = tmp_path / "pulled"
    pulled = skopeo("copy", "--quiet", "--src-tls-verify=false", target, f"oci:{out}:v1")
    assert pulled.returncode == 0, pulled.stderr
    for blob in oci_images.iter_blobs(sample_image):
        copied = out / "blobs" / "sha256" / blob.digest.split(":", 1)[1]
        assert copied.read_bytes() == sample_image.blob_path(blob.digest).read_bytes()
    # Ranges come from S3 too.
    layer = sample_image.layers[0]
    part = V2(registry, registry.token).request(
        "GET", f"/v2/team/s3/blobs/{layer.digest}", headers={"Range": "bytes=5-20"})
    assert part.status_code == 206
    assert part.content == sample_image.blob_path(layer.digest).read_bytes()[5:21]
    # A chunked upload spools locally and is committed into the bucket after verification.
    client = V2(registry, registry.token)
    data = b"chunked into S3 " * 10_000
    started = client.request("POST", "/v2/team/s3/blobs/uploads/")
    client.request("PATCH", started.headers["Location"], data=data[:7])
    done = client.request("PUT", started.headers["Location"], params={"digest": sha256(data)},
                          data=data[7:])
    assert done.status_code == 201, done.text
    assert client.request("GET", f"/v2/team/s3/blobs/{sha256(data)}").content == data
    # The appc offer converts from layers read out of the bucket.
    aci = requests.get(f"{registry.base_url}/_aci/127.0.0.1/team/s3/v1/linux/amd64/image.aci",
                       timeout=120)
    assert aci.status_code == 200, aci.text
    path = tmp_path / "s3.aci"
    path.write_bytes(aci.content)
    actool_validate(path)
    assert oci_images.rootfs_listing(path) == oci_images.SAMPLE_ROOTFS


def test_docker2aci_pulls_from_our_registry(registry: LiveRegistry,
                                             sample_image: oci_images.OCIImage,
                                             tmp_path, actool_validate) -> None:
    pushed = skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds",
                    f"admin:{registry.token}", f"oci:{sample_image.layout}:v1",
                    f"docker://127.0.0.1:{registry.port}/team/pulled:v1")
    assert pushed.returncode == 0, pushed.stderr
    empty_config = tmp_path / "docker-config.json"
    empty_config.write_text(json.dumps({"auths": {}}))
    [converted] = convert(f"docker://127.0.0.1:{registry.port}/team/pulled:v1", tmp_path,
                          ConvertOptions(docker_config=empty_config))
    actool_validate(converted.path)
    assert oci_images.rootfs_listing(converted.path) == oci_images.SAMPLE_ROOTFS
    assert converted.manifest["name"] == f"127.0.0.1_{registry.port}/team/pulled"
