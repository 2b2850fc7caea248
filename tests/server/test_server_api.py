"""The upload API and the services behind it: signatures, deduplication, versions, `latest`,
keys, roles, audit (in-process on Flask's test client)."""

from __future__ import annotations

import json

import pytest
from server_app import make_test_registry
from server_images import build_aci

from registry.signing import generate_key, read_public_keys, sign_detached, verify_detached

NAME = "127.0.0.1/team/api"


@pytest.fixture
def registry(tmp_path, registry_key_file):  # type: ignore[no-untyped-def]
    return make_test_registry(tmp_path / "data", registry_key_file)


def served_keys(registry, name: str = NAME):  # type: ignore[no-untyped-def]
    return read_public_keys(registry.get(f"/_aci/pubkeys/{name}/pubkeys.gpg").data)


def test_unsigned_upload_is_signed_by_the_registry(registry, tmp_path):
    image = build_aci(tmp_path, NAME, version="1.0")
    response = registry.upload(NAME, image)
    assert response.status_code == 201, response.json
    result = response.json
    assert result["repository"] == NAME and result["version"] == "1.0"
    assert result["image_id"].startswith("sha512-") and result["digest"].startswith("sha256:")
    signature = registry.get(f"/_aci/{NAME}/1.0/linux/amd64/image.aci.asc").data
    signer = verify_detached(signature, image, served_keys(registry))
    assert signer.fingerprint == result["signed_by"]
    # An identical retry is idempotent.
    again = registry.upload(NAME, image)
    assert again.status_code == 200 and again.json["unchanged"] is True


def test_owner_signature_with_registered_key(registry, tmp_path):
    owner = generate_key("owner <owner@example.com>", cipher="cv25519")
    image = build_aci(tmp_path, NAME, version="2.0")
    signature = sign_detached(owner, image)
    # Unknown before registration, accepted after.
    assert registry.upload(NAME, image, signature=signature).status_code == 400
    assert registry.api("POST", "/repositories", json={"name": NAME}).status_code == 201
    assert registry.api("POST", f"/repositories/{NAME}/-/keys",
                        data=owner.armored_public()).status_code == 201
    response = registry.upload(NAME, image, signature=signature)
    assert response.status_code == 201, response.json
    assert response.json["signed_by"] == owner.fingerprint
    served = registry.get(f"/_aci/{NAME}/2.0/linux/amd64/image.aci.asc").data
    assert served == signature  # the owner's own signature is served untouched
    assert owner.fingerprint in {k.fingerprint for k in served_keys(registry)}
    listed = registry.api("GET", f"/repositories/{NAME}/-/keys").json["keys"]
    assert [k["fingerprint"] for k in listed] == [owner.fingerprint]


def test_identical_images_are_stored_once(registry, tmp_path):
    image = build_aci(tmp_path, NAME, version=None)
    for version in ("a", "b"):
        response = registry.upload(NAME, image, version=version)
        assert response.status_code == 201, response.json
    assert response.json["deduplicated"] is True
    blobs = [o for o in registry.snapshot()["objects"] if o.startswith("blobs/")]
    assert len(blobs) == 1
    images = registry.api("GET", f"/repositories/{NAME}/-/images").json["images"]
    assert sorted(i["version"] for i in images) == ["a", "b"]
    assert len({i["digest"] for i in images}) == 1


def test_versions_latest_and_deletion(registry, tmp_path):
    files = {v: build_aci(tmp_path / v, NAME, version=v) for v in ("1.0", "1.1", "2.0")}
    for version in ("1.0", "2.0", "1.1"):
        assert registry.upload(NAME, files[version]).status_code == 201
    latest = f"/_aci/{NAME}/latest/linux/amd64/image.aci"
    assert registry.get(latest).data == files["1.1"].read_bytes()  # newest push
    assert registry.api("PUT", f"/repositories/{NAME}/-/latest", json={"version": "2.0"}).status_code == 200
    assert registry.get(latest).data == files["2.0"].read_bytes()
    assert registry.api("GET", f"/repositories/{NAME}").json["latest"] == "2.0"
    missing = registry.api("PUT", f"/repositories/{NAME}/-/latest", json={"version": "9"})
    assert missing.status_code == 404 and missing.json["error"]["code"] == "version-not-found"
    assert registry.api("DELETE", f"/repositories/{NAME}/-/versions/2.0").json == {"deleted": 1}
    assert registry.get(f"/_aci/{NAME}/2.0/linux/amd64/image.aci").status_code == 404
    assert registry.get(latest).data == files["1.1"].read_bytes()
    after = registry.api("GET", f"/repositories/{NAME}").json
    assert after["latest"] == "1.1" and after["latest_marked"] is None  # back to the newest push
    other_arch = registry.get(f"/_aci/{NAME}/1.1/linux/arm64/image.aci")
    assert other_arch.status_code == 404


def test_key_rotation_keeps_old_signatures_verifiable(registry, tmp_path):
    first = build_aci(tmp_path / "1", NAME, version="1")
    assert registry.upload(NAME, first).status_code == 201
    old_keys = registry.api("GET", "/keys").json["keys"]
    rotated = registry.api("POST", "/keys/rotate")
    assert rotated.status_code == 201
    keys = registry.api("GET", "/keys").json["keys"]
    assert {k["status"] for k in keys} == {"active", "retired"}
    assert old_keys[0]["fingerprint"] in {k["fingerprint"] for k in keys if k["status"] == "retired"}
    second = build_aci(tmp_path / "2", NAME, version="2")
    result = registry.upload(NAME, second).json
    assert result["signed_by"] == rotated.json["fingerprint"]
    published = served_keys(registry)
    assert len(published) == 2
    for version, image in (("1", first), ("2", second)):
        signature = registry.get(f"/_aci/{NAME}/{version}/linux/amd64/image.aci.asc").data
        verify_detached(signature, image, published)
    retire = registry.api("POST", f"/keys/{rotated.json['fingerprint']}/retire")
    assert retire.status_code == 409  # the last active key cannot go


def test_roles_and_audit_log(registry, tmp_path):
    assert registry.api("POST", "/repositories", json={"name": NAME, "public": False}).status_code == 201
    assert registry.api("POST", "/users", json={"username": "dev", "password": "dev-password"}).status_code == 201
    dev = registry.new_token("dev")
    image = build_aci(tmp_path, NAME, version="1")
    assert registry.upload(NAME, image, token=dev).status_code == 404
    assert registry.api("PUT", f"/repositories/{NAME}/-/roles/dev", json={"role": "read"}).status_code == 200
    assert registry.upload(NAME, image, token=dev).status_code == 403
    assert registry.api("PUT", f"/repositories/{NAME}/-/roles/dev", json={"role": "write"}).status_code == 200
    assert registry.upload(NAME, image, token=dev).status_code == 201
    # Writers cannot administer.
    assert registry.api("PATCH", f"/repositories/{NAME}", token=dev, json={"public": True}).status_code == 403
    bad_role = registry.api("PUT", f"/repositories/{NAME}/-/roles/dev", json={"role": "owner"})
    assert bad_role.status_code == 400 and "read, write or admin" in bad_role.json["error"]["message"]
    assert registry.api("GET", "/audit", token=dev).status_code == 403
    events = registry.api("GET", "/audit").json["events"]
    actions = [e["action"] for e in events]
    for action in ("repository.create", "user.create", "role.set", "image.upload", "token.create"):
        assert action in actions
    upload = next(e for e in events if e["action"] == "image.upload")
    assert upload["actor"] == "dev" and upload["target"] == f"{NAME}:1"
    assert json.dumps(upload["details"])  # serialisable details (image ID, digest, signer)


def test_whoami_and_bad_json(registry):
    assert registry.api("GET", "/whoami").json["username"] == "admin"
    assert registry.api("GET", "/whoami", token=None).status_code == 401
    bad = registry.api("POST", "/repositories", data="not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json["error"]["code"] == "bad-json"


def test_discovery_for_names_parents_and_root(registry):
    for path, prefix in (("/team/api", NAME), ("/team", "127.0.0.1/team"), ("/", "127.0.0.1")):
        page = registry.get(path + "?ac-discovery=1")
        assert page.status_code == 200, path
        text = page.data.decode()
        assert (f'<meta name="ac-discovery" content="{prefix} '
                "http://127.0.0.1:8080/_aci/{name}/{version}/{os}/{arch}/image.{ext}\">") in text
        assert f'<meta name="ac-discovery-pubkeys" content="{prefix} http://127.0.0.1:8080/_aci/pubkeys/' in text
    foreign = registry.client.get("/team/api?ac-discovery=1", base_url="http://localhost:8080")
    assert foreign.status_code == 404
    assert registry.get("/Bad_Name?ac-discovery=1").status_code == 404


def test_discovery_fast_path_equals_the_flask_view(registry):
    fast = registry.get("/team/api?ac-discovery=1")
    # Any other query parameter skips the WSGI fast path and reaches the Flask view.
    routed = registry.get("/team/api?ac-discovery=1&via=flask")
    assert fast.status_code == routed.status_code == 200
    assert fast.data == routed.data
    assert fast.headers["Cache-Control"] == routed.headers["Cache-Control"]
    assert fast.mimetype == routed.mimetype == "text/html"
    head = registry.client.head("/team/api?ac-discovery=1", base_url="http://127.0.0.1:8080")
    assert head.status_code == 200 and head.data == b""
    assert int(head.headers["Content-Length"]) == len(fast.data)


def test_s3_download_redirects_to_a_presigned_url(tmp_path, registry_key_file, s3_endpoint):
    import requests
    from s3server import create_bucket

    registry = make_test_registry(
        tmp_path / "data", registry_key_file, storage="s3", s3_bucket=create_bucket(s3_endpoint),
        s3_endpoint=s3_endpoint.url, s3_access_key=s3_endpoint.access_key,
        s3_secret_key=s3_endpoint.secret_key, s3_region=s3_endpoint.region, s3_presign="1")
    image = build_aci(tmp_path, NAME, version="1.0")
    assert registry.upload(NAME, image).status_code == 201
    response = registry.get(f"/_aci/{NAME}/1.0/linux/amd64/image.aci")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(s3_endpoint.url) and "Signature" in location
    assert requests.get(location, timeout=30).content == image.read_bytes()
    # Private images redirect only after the access check.
    assert registry.api("PATCH", f"/repositories/{NAME}", json={"public": False}).status_code == 200
    assert registry.get(f"/_aci/{NAME}/1.0/linux/amd64/image.aci").status_code == 404
    assert registry.get(f"/_aci/{NAME}/1.0/linux/amd64/image.aci", token=registry.token).status_code == 302


def test_multipart_upload_with_signature(registry, tmp_path):
    import io

    owner = generate_key("owner <owner@example.com>", cipher="cv25519")
    assert registry.api("POST", "/repositories", json={"name": NAME}).status_code == 201
    assert registry.api("POST", f"/repositories/{NAME}/-/keys", data=owner.armored_public()).status_code == 201
    image = build_aci(tmp_path, NAME, version="3.0")
    form = {"aci": (io.BytesIO(image.read_bytes()), "image.aci"),
            "signature": (io.BytesIO(sign_detached(owner, image)), "image.aci.asc")}
    response = registry.api("POST", f"/repositories/{NAME}/-/images", data=form,
                            content_type="multipart/form-data")
    assert response.status_code == 201, response.json
    assert response.json["signed_by"] == owner.fingerprint
    empty = registry.api("POST", f"/repositories/{NAME}/-/images", data={"other": "x"},
                         content_type="multipart/form-data")
    assert empty.status_code == 400 and "'aci'" in empty.json["error"]["message"]


def test_unknown_api_paths_answer_json(registry):
    response = registry.api("GET", "/no/such/thing")
    assert response.status_code == 404 and response.json["error"]["code"] == "no-such-endpoint"
    # Specific routes still win over the fallback.
    assert registry.api("GET", f"/repositories/{NAME}/-/images").json["error"]["code"] == "repository-not-found"


def test_discovery_of_other_domains_through_the_registry_host(tmp_path, registry_key_file):
    registry = make_test_registry(tmp_path / "data", registry_key_file,
                                  domains=("example.com", "example.org"))
    template = "http://127.0.0.1:8080/_aci/{name}/{version}/{os}/{arch}/image.{ext}"
    for query in ("ac-discovery=1", "ac-discovery=1&via=flask"):
        page = registry.get(f"/example.com/team/app?{query}")  # Host: 127.0.0.1:8080
        assert page.status_code == 200
        assert f'content="example.com/team/app {template}"' in page.data.decode()
        assert registry.get(f"/example.net/team/app?{query}").status_code == 404
        assert registry.get(f"/team/app?{query}").status_code == 404
    # Asked under its own name, a hosted domain answers with host + path as usual.
    direct = registry.client.get("/team/app?ac-discovery=1", base_url="http://example.org")
    assert 'content="example.org/team/app ' in direct.data.decode()
