"""Images pushed through /v2/ are offered through appc discovery like native ACIs:
converted with docker2aci on the first request, signed with the registry's key, then served
from storage."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import oci_images
import pytest
import requests
from live_registry import LiveRegistry, actool_discover
from v2_client import OCI_INDEX, OCI_MANIFEST, V2, skopeo

from registry.signing import read_public_keys, verify_detached

pytestmark = [pytest.mark.e2e]

NAME = "127.0.0.1/team/offer"


def push(registry: LiveRegistry, image: oci_images.OCIImage, target: str) -> None:
    result = skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds",
                    f"admin:{registry.token}", f"oci:{image.layout}:{image.tag}",
                    f"docker://127.0.0.1:{registry.port}/{target}")
    assert result.returncode == 0, result.stderr + registry.log()


def wait_ok(url: str, timeout: float = 90) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = requests.get(url, timeout=120)
        if response.status_code != 202 or time.monotonic() > deadline:
            return response
        time.sleep(float(response.headers.get("Retry-After", "1")))


def test_oci_push_is_discoverable_as_a_signed_aci(registry: LiveRegistry, sample_image,
                                                  actool: str, actool_validate,
                                                  tmp_path: Path) -> None:
    push(registry, sample_image, "team/offer:v1")
    urls = actool_discover(actool, registry, f"{NAME}:v1")
    assert urls["aci"].startswith(registry.base_url)

    # First the signature, as rkt asks for it: 202 while the conversion runs.
    first = requests.get(urls["asc"], timeout=60)
    assert first.status_code == 202 and first.headers["Retry-After"]
    signature = wait_ok(urls["asc"])
    assert signature.status_code == 200, signature.text
    aci = wait_ok(urls["aci"])
    assert aci.status_code == 200, aci.text
    path = tmp_path / "offer.aci"
    path.write_bytes(aci.content)
    actool_validate(path)

    keys = read_public_keys(requests.get(urls["keys"], timeout=30).content)
    signer = verify_detached(signature.content, path, keys)
    assert signer.fingerprint in {k.fingerprint for k in keys}

    manifest = oci_images.aci_manifest(path)
    assert manifest["name"] == NAME
    labels = {label["name"]: label["value"] for label in manifest["labels"]}
    assert labels == {"version": "v1", "os": "linux", "arch": "amd64"}
    assert manifest["app"]["exec"] == ["/bin/hello", "first", "second"]
    assert (manifest["app"]["user"], manifest["app"]["group"]) == ("1000", "100")
    notes = {a["name"]: a["value"] for a in manifest["annotations"]}
    assert notes["appc.io/docker/manifesthash"] == sample_image.manifest.digest
    # Whiteouts applied, opaque directory honoured, hard links kept.
    assert oci_images.rootfs_listing(path) == oci_images.SAMPLE_ROOTFS

    # Indexed like a pushed ACI: listed by the API, served from storage the next time.
    images = registry.api("GET", f"/repositories/{NAME}/-/images").json()["images"]
    assert [(i["version"], i["os"], i["arch"]) for i in images] == [("v1", "linux", "amd64")]
    again = requests.get(urls["aci"], timeout=60)
    assert again.status_code == 200 and again.content == aci.content
    assert again.headers["ETag"].strip('"') == images[0]["digest"]


def test_image_request_converts_synchronously_and_follows_the_tag(
        registry: LiveRegistry, sample_image, tmp_path: Path) -> None:
    push(registry, sample_image, "team/offer:v2")
    url = f"{registry.base_url}/_aci/{NAME}/v2/linux/amd64/image.aci"
    first = requests.get(url, timeout=120)
    assert first.status_code == 200
    # No image for another platform: the usual 404, nothing converted.
    other = requests.get(f"{registry.base_url}/_aci/{NAME}/v2/linux/aarch64/image.aci",
                         timeout=60)
    assert other.status_code == 404
    # The OCI tag is the source: a deleted appc version is converted again on request.
    deleted = registry.api("DELETE", f"/repositories/{NAME}/-/versions/v2")
    assert deleted.status_code == 200, deleted.text
    again = requests.get(url, timeout=120)
    assert again.status_code == 200
    assert again.content == first.content  # the conversion is reproducible
    # Pushing new content under the tag replaces the offered ACI on the next request.
    changed = oci_images.write_oci_layout(tmp_path / "changed", [[
        oci_images.directory("bin"), oci_images.file("bin/hello", "#!/bin/sh\necho v2\n", 0o755),
    ]], tag="v2")
    push(registry, changed, "team/offer:v2")
    second = requests.get(url, timeout=120)
    assert second.status_code == 200 and second.content != first.content
    path = tmp_path / "changed.aci"
    path.write_bytes(second.content)
    assert oci_images.rootfs_listing(path)["bin/hello"] == ("file", "#!/bin/sh\necho v2\n")


def test_private_oci_repository_offers_nothing_to_outsiders(registry: LiveRegistry,
                                                            sample_image) -> None:
    created = registry.api("POST", "/repositories",
                           json={"name": "127.0.0.1/team/hidden", "public": False})
    assert created.status_code == 201
    push(registry, sample_image, "team/hidden:v1")
    base = f"{registry.base_url}/_aci/127.0.0.1/team/hidden/v1/linux/amd64/image"
    for ext in ("aci", "aci.asc"):
        assert requests.get(f"{base}.{ext}", timeout=60).status_code == 404
    visible = V2(registry, None).request("GET", "/v2/_catalog").json()["repositories"]
    assert "team/offer" in visible and "team/hidden" not in visible
    owner = requests.get(f"{base}.aci", timeout=120,
                         headers={"Authorization": f"Bearer {registry.token}"})
    assert owner.status_code == 200


def test_hostile_image_is_stored_as_oci_but_not_offered(registry: LiveRegistry,
                                                        tmp_path: Path) -> None:
    """A layer escaping the root is valid OCI content, but converting it must fail cleanly:
    a clear 422, and no appc version, image or blob left behind."""
    hostile = oci_images.write_oci_layout(tmp_path / "hostile", [[
        oci_images.directory("bin"), oci_images.file("../escape", "out of the root\n"),
    ]], tag="v1")
    push(registry, hostile, "team/hostile:v1")
    before = sorted(p.name for p in (registry.data_dir / "storage" / "blobs").rglob("*"))
    url = f"{registry.base_url}/_aci/127.0.0.1/team/hostile/v1/linux/amd64/image.aci"
    for _attempt in range(2):  # the failure is remembered, not retried on every request
        refused = requests.get(url, timeout=120)
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "conversion-failed" and "escape" in error["message"]
    signature = requests.get(url + ".asc", timeout=60)
    assert signature.status_code == 422
    images = registry.api("GET", "/repositories/127.0.0.1/team/hostile/-/images").json()
    assert images["images"] == []
    after = sorted(p.name for p in (registry.data_dir / "storage" / "blobs").rglob("*"))
    assert after == before


def test_index_entry_for_the_platform_is_offered_once_to_concurrent_requests(
        registry: LiveRegistry, v2: V2, sample_image) -> None:
    """An OCI index offers the entry for the requested os/arch; simultaneous first requests
    share one conversion (the others wait for it) and get the same bytes."""
    for blob in (sample_image.config, *sample_image.layers):
        v2.push_blob("team/multi", sample_image.blob_path(blob.digest).read_bytes())
    manifest_bytes = sample_image.blob_path(sample_image.manifest.digest).read_bytes()
    pushed = v2.request("PUT", f"/v2/team/multi/manifests/{sample_image.manifest.digest}",
                        data=manifest_bytes, headers={"Content-Type": OCI_MANIFEST})
    assert pushed.status_code == 201, pushed.text
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sample_image.manifest.digest,
         "size": sample_image.manifest.size,
         "platform": {"os": "linux", "architecture": "amd64"}}]}
    assert v2.push_manifest("team/multi", "multi", index, OCI_INDEX).status_code == 201

    url = f"{registry.base_url}/_aci/127.0.0.1/team/multi/multi/linux/amd64/image.aci"
    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(lambda _: requests.get(url, timeout=180), range(3)))
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].content == answers[1].content == answers[2].content
    images = registry.api("GET", "/repositories/127.0.0.1/team/multi/-/images").json()["images"]
    assert len(images) == 1 and images[0]["version"] == "multi"
    assert requests.get(url.replace("amd64", "aarch64"), timeout=60).status_code == 404
