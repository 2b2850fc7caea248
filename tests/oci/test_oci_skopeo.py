"""skopeo, an independent client, pushes to and pulls from the registry's /v2/ API."""

from __future__ import annotations

import json

import oci_images
import pytest
from live_registry import LiveRegistry
from v2_client import V2, error_codes, new_user, skopeo, stored_oci_files

pytestmark = [pytest.mark.e2e]

NO_TLS = "--dest-tls-verify=false"


def push(registry: LiveRegistry, image: oci_images.OCIImage, target: str,
         creds: str | None) -> None:
    args = ["copy", "--quiet", NO_TLS]
    if creds:
        args += ["--dest-creds", creds]
    result = skopeo(*args, f"oci:{image.layout}:{image.tag}",
                    f"docker://127.0.0.1:{registry.port}/{target}")
    assert result.returncode == 0, result.stderr + registry.log()


def test_push_inspect_and_pull_back(registry: LiveRegistry, sample_image: oci_images.OCIImage,
                                    tmp_path) -> None:
    push(registry, sample_image, "team/app:v1", f"admin:{registry.token}")
    # Public by default, like the upload API: anonymous inspection through the token flow.
    inspected = skopeo("inspect", "--tls-verify=false",
                       f"docker://127.0.0.1:{registry.port}/team/app:v1")
    assert inspected.returncode == 0, inspected.stderr
    facts = json.loads(inspected.stdout)
    assert facts["Digest"] == sample_image.manifest.digest
    assert facts["Layers"] == [layer.digest for layer in sample_image.layers]
    assert facts["Os"] == "linux" and facts["Architecture"] == "amd64"
    assert "v1" in facts["RepoTags"]

    out = tmp_path / "pulled"
    pulled = skopeo("copy", "--quiet", "--src-tls-verify=false",
                    f"docker://127.0.0.1:{registry.port}/team/app:v1", f"oci:{out}:v1")
    assert pulled.returncode == 0, pulled.stderr
    for blob in oci_images.iter_blobs(sample_image):
        copied = out / "blobs" / "sha256" / blob.digest.split(":", 1)[1]
        assert copied.read_bytes() == sample_image.blob_path(blob.digest).read_bytes()
    # The repository is the registry's appc repository 127.0.0.1/team/app.
    listed = registry.api("GET", "/repositories").json()["repositories"]
    assert "127.0.0.1/team/app" in [r["name"] for r in listed]


def test_unauthenticated_push_is_refused(registry: LiveRegistry,
                                         sample_image: oci_images.OCIImage) -> None:
    before = stored_oci_files(registry)
    result = skopeo("copy", "--quiet", NO_TLS, f"oci:{sample_image.layout}:v1",
                    f"docker://127.0.0.1:{registry.port}/team/anon:v1")
    assert result.returncode != 0
    assert "unauthorized" in result.stderr.lower() or "authentication" in result.stderr.lower()
    wrong = skopeo("copy", "--quiet", NO_TLS, "--dest-creds", "admin:pyrkt_not-a-token",
                   f"oci:{sample_image.layout}:v1",
                   f"docker://127.0.0.1:{registry.port}/team/anon:v1")
    assert wrong.returncode != 0
    assert stored_oci_files(registry) == before
    names = [r["name"] for r in registry.api("GET", "/repositories").json()["repositories"]]
    assert "127.0.0.1/team/anon" not in names


def test_private_repository_is_invisible(registry: LiveRegistry,
                                         sample_image: oci_images.OCIImage) -> None:
    created = registry.api("POST", "/repositories",
                           json={"name": "127.0.0.1/team/secret", "public": False})
    assert created.status_code == 201, created.text
    push(registry, sample_image, "team/secret:v1", f"admin:{registry.token}")
    outsider = new_user(registry, "outsider")
    port = registry.port

    # skopeo, anonymous or as a user without a role: the same failure as for a missing name.
    for creds in (None, f"outsider:{outsider}"):
        extra = ["--creds", creds] if creds else []
        secret = skopeo("inspect", "--tls-verify=false", *extra,
                        f"docker://127.0.0.1:{port}/team/secret:v1")
        missing = skopeo("inspect", "--tls-verify=false", *extra,
                         f"docker://127.0.0.1:{port}/team/missing:v1")
        assert secret.returncode != 0 and missing.returncode != 0
        assert secret.stderr.replace("secret", "X") .split("msg=")[-1] == \
            missing.stderr.replace("missing", "X").split("msg=")[-1]

    # Raw requests: status, body and headers are those of a repository that does not exist.
    for client in (V2(registry, None), V2(registry, outsider)):
        for path in ("/v2/team/{}/manifests/v1", "/v2/team/{}/tags/list",
                     f"/v2/team/{{}}/blobs/{sample_image.layers[0].digest}"):
            secret = client.request("GET", path.format("secret"))
            missing = client.request("GET", path.format("missing"))
            assert secret.status_code == missing.status_code
            assert secret.status_code in (401, 404)
            assert error_codes(secret) == error_codes(missing)
            assert secret.headers.get("WWW-Authenticate", "").replace("secret", "X") == \
                missing.headers.get("WWW-Authenticate", "").replace("missing", "X")
        catalog = client.request("GET", "/v2/_catalog")
        assert catalog.status_code == 200
        assert "team/secret" not in catalog.json()["repositories"]
        assert "team/app" in catalog.json()["repositories"]

    # Granting the read role opens it to that user, through skopeo's token flow too.
    granted = registry.api("PUT", "/repositories/127.0.0.1/team/secret/-/roles/outsider",
                           json={"role": "read"})
    assert granted.status_code == 200, granted.text
    reader = skopeo("inspect", "--tls-verify=false", "--creds", f"outsider:{outsider}",
                    f"docker://127.0.0.1:{port}/team/secret:v1")
    assert reader.returncode == 0, reader.stderr
    assert "team/secret" in V2(registry, outsider).request("GET", "/v2/_catalog").json()[
        "repositories"]
    # ... but reading is not writing.
    denied = V2(registry, outsider).request("DELETE", "/v2/team/secret/manifests/v1")
    assert denied.status_code == 403 and error_codes(denied) == ["DENIED"]
