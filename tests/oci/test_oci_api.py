"""The /v2/ API through raw HTTP requests against a live gunicorn registry."""

from __future__ import annotations

import json
import os
import time

import pytest
import requests
from live_registry import LiveRegistry
from v2_client import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    V2,
    error_codes,
    sha256,
    spooled_uploads,
    stored_oci_files,
)

pytestmark = [pytest.mark.e2e]


def test_base_endpoint_and_bearer_flow(registry: LiveRegistry, v2: V2, anonymous: V2) -> None:
    ok = v2.request("GET", "/v2/")
    assert ok.status_code == 200
    assert ok.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    challenge = anonymous.request("GET", "/v2/")
    assert challenge.status_code == 401 and error_codes(challenge) == ["UNAUTHORIZED"]
    header = challenge.headers["WWW-Authenticate"]
    assert header.startswith(f'Bearer realm="{registry.base_url}/v2/token"')
    assert f'service="127.0.0.1:{registry.port}"' in header

    v2.push_image("flow/app", "t1")
    token_url = f"{registry.base_url}/v2/token"
    scope = {"service": f"127.0.0.1:{registry.port}", "scope": "repository:flow/app:pull,push"}
    # Basic with the API token as password (what docker login stores), as skopeo sends it.
    granted = requests.get(token_url, params=scope, auth=("admin", registry.token), timeout=30)
    assert granted.status_code == 200, granted.text
    body = granted.json()
    assert body["expires_in"] > 0 and body["token"] == body["access_token"]
    bearer = V2(registry, body["token"])
    assert bearer.request("GET", "/v2/").status_code == 200
    assert bearer.request("GET", "/v2/flow/app/manifests/t1").status_code == 200
    # The token covers flow/app only: another repository asks for a new token (401 + scope).
    other = bearer.request("GET", "/v2/team/app/tags/list")
    assert other.status_code == 401
    assert 'scope="repository:team/app:pull"' in other.headers["WWW-Authenticate"]
    # An anonymous token holds pull of public repositories, never push.
    anon = requests.get(token_url, params=scope, timeout=30).json()["token"]
    assert V2(registry, anon).request("GET", "/v2/flow/app/manifests/t1").status_code == 200
    refused = V2(registry, anon).request("POST", "/v2/flow/app/blobs/uploads/")
    assert refused.status_code == 401 and error_codes(refused) == ["UNAUTHORIZED"]
    # Wrong credentials at the token endpoint, and a forged token, are refused.
    assert requests.get(token_url, params=scope, auth=("admin", "pyrkt_wrong"),
                        timeout=30).status_code == 401
    forged = body["token"][:-4] + ("AAAA" if not body["token"].endswith("AAAA") else "BBBB")
    assert V2(registry, forged).request("GET", "/v2/flow/app/tags/list").status_code == 401


def test_chunked_upload_with_ranges(registry: LiveRegistry, v2: V2) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    digest = sha256(data)
    started = v2.request("POST", "/v2/chunks/app/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    uuid = started.headers["Docker-Upload-UUID"]
    assert location.endswith(uuid) and started.headers["Range"] == "0-0"
    pieces = [data[:1_000_000], data[1_000_000:2_500_000], data[2_500_000:]]
    offset = 0
    for piece in pieces:
        end = offset + len(piece) - 1
        chunk = v2.request("PATCH", location, data=piece,
                           headers={"Content-Range": f"{offset}-{end}",
                                    "Content-Type": "application/octet-stream"})
        assert chunk.status_code == 202, chunk.text
        assert chunk.headers["Range"] == f"0-{end}"
        location = chunk.headers["Location"]
        offset = end + 1
    # A chunk that does not continue where the data ends is refused, and changes nothing.
    wrong = v2.request("PATCH", location, data=b"xx", headers={"Content-Range": "5-6"})
    assert wrong.status_code == 416 and error_codes(wrong) == ["BLOB_UPLOAD_INVALID"]
    status = v2.request("GET", location)
    assert status.status_code == 204 and status.headers["Range"] == f"0-{len(data) - 1}"
    done = v2.request("PUT", location, params={"digest": digest})
    assert done.status_code == 201, done.text
    assert done.headers["Docker-Content-Digest"] == digest
    assert done.headers["Location"].endswith(f"/v2/chunks/app/blobs/{digest}")
    assert uuid not in spooled_uploads(registry)

    head = v2.request("HEAD", f"/v2/chunks/app/blobs/{digest}")
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(data)
    assert head.headers["Docker-Content-Digest"] == digest
    whole = v2.request("GET", f"/v2/chunks/app/blobs/{digest}")
    assert whole.content == data
    part = v2.request("GET", f"/v2/chunks/app/blobs/{digest}", headers={"Range": "bytes=10-99"})
    assert part.status_code == 206 and part.content == data[10:100]
    beyond = v2.request("GET", f"/v2/chunks/app/blobs/{digest}",
                        headers={"Range": f"bytes={len(data) + 5}-"})
    assert beyond.status_code == 416
    # Finished uploads are gone; unknown ones say so.
    assert error_codes(v2.request("GET", location)) == ["BLOB_UPLOAD_UNKNOWN"]


def test_upload_continues_on_another_registry_process(registry: LiveRegistry, v2: V2,
                                                      tmp_path) -> None:
    """A second gunicorn on the same database and data directory (another set of workers)
    takes over a chunked upload the first one started."""
    second = LiveRegistry(registry.data_dir, initialise=False)
    second.environ = dict(registry.environ, PYRKT_REGISTRY_BASE_URL=second.base_url)
    with second:
        other = V2(second, registry.token)
        data = os.urandom(200_000)
        started = v2.request("POST", "/v2/multi/app/blobs/uploads/")
        path = started.headers["Location"]
        first = v2.request("PATCH", path, data=data[:50_000])
        assert first.status_code == 202
        more = other.request("PATCH", path, data=data[50_000:],
                             headers={"Content-Range": f"50000-{len(data) - 1}"})
        assert more.status_code == 202, more.text
        done = v2.request("PUT", path, params={"digest": sha256(data)})
        assert done.status_code == 201, done.text
        assert other.request("GET", f"/v2/multi/app/blobs/{sha256(data)}").content == data


def test_monolithic_upload_and_digest_mismatch(registry: LiveRegistry, v2: V2) -> None:
    before = stored_oci_files(registry)
    data = b"the real content"
    claimed = sha256(b"something else")
    mismatch = v2.request("POST", "/v2/mono/app/blobs/uploads/", params={"digest": claimed},
                          data=data)
    assert mismatch.status_code == 400 and error_codes(mismatch) == ["DIGEST_INVALID"]
    assert stored_oci_files(registry) == before
    assert v2.request("HEAD", f"/v2/mono/app/blobs/{sha256(data)}").status_code == 404
    assert v2.request("HEAD", f"/v2/mono/app/blobs/{claimed}").status_code == 404

    # The same through a chunked upload: refused at the PUT, the session and spool gone.
    started = v2.request("POST", "/v2/mono/app/blobs/uploads/")
    path, uuid = started.headers["Location"], started.headers["Docker-Upload-UUID"]
    v2.request("PATCH", path, data=data)
    refused = v2.request("PUT", path, params={"digest": claimed})
    assert refused.status_code == 400 and error_codes(refused) == ["DIGEST_INVALID"]
    assert stored_oci_files(registry) == before
    assert uuid not in spooled_uploads(registry)
    assert error_codes(v2.request("GET", path)) == ["BLOB_UPLOAD_UNKNOWN"]
    bad = v2.request("POST", "/v2/mono/app/blobs/uploads/", params={"digest": "md5:abc"},
                     data=data)
    assert bad.status_code == 400 and error_codes(bad) == ["DIGEST_INVALID"]
    # The refused pushes did not even create the repository.
    names = [r["name"] for r in registry.api("GET", "/repositories").json()["repositories"]]
    assert "127.0.0.1/mono/app" not in names

    digest = v2.push_blob("mono/app", data)
    assert v2.request("GET", f"/v2/mono/app/blobs/{digest}").content == data
    # Cancelling an upload removes its spool.
    started = v2.request("POST", "/v2/mono/app/blobs/uploads/")
    cancel = v2.request("DELETE", started.headers["Location"])
    assert cancel.status_code == 204
    assert started.headers["Docker-Upload-UUID"] not in spooled_uploads(registry)


def test_blobs_do_not_leak_between_repositories_but_mount(registry: LiveRegistry,
                                                         v2: V2) -> None:
    digest = v2.push_blob("mount/src", b"shared layer")
    assert v2.request("HEAD", f"/v2/mount/dst/blobs/{digest}").status_code == 404
    mounted = v2.request("POST", "/v2/mount/dst/blobs/uploads/",
                         params={"mount": digest, "from": "mount/src"})
    assert mounted.status_code == 201 and mounted.headers["Docker-Content-Digest"] == digest
    assert v2.request("GET", f"/v2/mount/dst/blobs/{digest}").content == b"shared layer"
    # A blob the source does not hold: the spec's fallback to a plain upload session.
    fallback = v2.request("POST", "/v2/mount/dst/blobs/uploads/",
                          params={"mount": sha256(b"nope"), "from": "mount/src"})
    assert fallback.status_code == 202 and "Docker-Upload-UUID" in fallback.headers


def test_manifests_of_every_media_type_by_tag_and_digest(v2: V2) -> None:
    oci_digest, oci_doc = v2.push_image("types/app", "oci", b"layer one")
    docker_digest, _ = v2.push_image("types/app", "docker", b"layer two", DOCKER_MANIFEST)
    for media_type, tag in ((OCI_INDEX, "index"), (DOCKER_LIST, "list")):
        child_type = OCI_MANIFEST if media_type == OCI_INDEX else DOCKER_MANIFEST
        child = oci_digest if media_type == OCI_INDEX else docker_digest
        index = {"schemaVersion": 2, "mediaType": media_type, "manifests": [
            {"mediaType": child_type, "digest": child, "size": 1,
             "platform": {"os": "linux", "architecture": "amd64"}}]}
        response = v2.push_manifest("types/app", tag, index, media_type)
        assert response.status_code == 201, response.text
        fetched = v2.request("GET", f"/v2/types/app/manifests/{tag}")
        assert fetched.headers["Content-Type"] == media_type
        assert fetched.headers["Docker-Content-Digest"] == sha256(fetched.content)
    by_digest = v2.request("GET", f"/v2/types/app/manifests/{oci_digest}")
    assert by_digest.status_code == 200 and json.loads(by_digest.content) == oci_doc
    head = v2.request("HEAD", "/v2/types/app/manifests/docker")
    assert head.headers["Content-Type"] == DOCKER_MANIFEST
    assert head.headers["Docker-Content-Digest"] == docker_digest
    # Pushing by digest: the digest must be the body's.
    body = json.dumps(oci_doc).encode()
    wrong = v2.request("PUT", f"/v2/types/app/manifests/{sha256(b'x')}", data=body,
                       headers={"Content-Type": OCI_MANIFEST})
    assert wrong.status_code == 400 and error_codes(wrong) == ["DIGEST_INVALID"]
    right = v2.request("PUT", f"/v2/types/app/manifests/{sha256(body)}", data=body,
                       headers={"Content-Type": OCI_MANIFEST})
    assert right.status_code == 201


def test_bad_manifests_are_refused_and_leave_nothing(registry: LiveRegistry, v2: V2) -> None:
    v2.push_image("bad/app", "ok")
    before = stored_oci_files(registry)
    oversize = b'{"schemaVersion": 2, "pad": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    too_big = v2.request("PUT", "/v2/bad/app/manifests/big", data=oversize,
                         headers={"Content-Type": OCI_MANIFEST})
    assert too_big.status_code == 413 and error_codes(too_big) == ["MANIFEST_INVALID"]
    assert "limit" in too_big.json()["errors"][0]["message"]
    unknown_blob = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "x", "digest": sha256(b"no config"), "size": 9},
                    "layers": []}
    missing = v2.push_manifest("bad/app", "missing", unknown_blob)
    assert missing.status_code == 400 and error_codes(missing) == ["MANIFEST_BLOB_UNKNOWN"]
    for body, content_type in ((b"not json", OCI_MANIFEST),
                               (b'{"schemaVersion": 1}', OCI_MANIFEST),
                               (b'{"schemaVersion": 2, "mediaType": "text/html"}', "")):
        refused = v2.request("PUT", "/v2/bad/app/manifests/junk", data=body,
                             headers={"Content-Type": content_type})
        assert refused.status_code in (400, 415)
        assert error_codes(refused) == ["MANIFEST_INVALID"]
    bad_tag = v2.push_manifest("bad/app", "-nope", unknown_blob)
    assert bad_tag.status_code == 400
    bad_name = v2.request("GET", "/v2/Bad__Name/tags/list")
    assert bad_name.status_code == 400 and error_codes(bad_name) == ["NAME_INVALID"]
    assert stored_oci_files(registry) == before
    tags = v2.request("GET", "/v2/bad/app/tags/list").json()["tags"]
    assert tags == ["ok"]


def test_tag_list_pagination_and_a_billion(registry: LiveRegistry, v2: V2) -> None:
    tags = ["a1", "b2", "c3", "d4", "e5"]
    for tag in tags:
        v2.push_image("paged/app", tag)
    seen: list[str] = []
    url = "/v2/paged/app/tags/list?n=2"
    pages = 0
    while url:
        page = v2.request("GET", url)
        assert page.status_code == 200
        seen += page.json()["tags"]
        pages += 1
        link = page.headers.get("Link")
        url = link.split(";")[0].strip("<>") if link else ""
    assert seen == tags and pages == 3
    after = v2.request("GET", "/v2/paged/app/tags/list", params={"n": 2, "last": "b2"})
    assert after.json()["tags"] == ["c3", "d4"]
    started = time.monotonic()
    billion = v2.request("GET", "/v2/paged/app/tags/list", params={"n": 1_000_000_000})
    assert billion.status_code == 200 and billion.json()["tags"] == tags
    assert "Link" not in billion.headers and time.monotonic() - started < 5
    huge = v2.request("GET", "/v2/paged/app/tags/list", params={"n": "9" * 29})
    assert huge.status_code == 200 and huge.json()["tags"] == tags
    for bad in ("-1", "ten", "9" * 40):
        refused = v2.request("GET", "/v2/paged/app/tags/list", params={"n": bad})
        assert refused.status_code == 400
        assert error_codes(refused) == ["PAGINATION_NUMBER_INVALID"]
    assert v2.request("GET", "/v2/paged/app/tags/list?n=0").json()["tags"] == []
    catalog = v2.request("GET", "/v2/_catalog", params={"n": 1_000_000_000})
    assert "paged/app" in catalog.json()["repositories"]
    first = v2.request("GET", "/v2/_catalog", params={"n": 1})
    assert len(first.json()["repositories"]) == 1 and 'rel="next"' in first.headers["Link"]


def test_deletion_of_tags_and_manifests(v2: V2, anonymous: V2) -> None:
    digest, _ = v2.push_image("gone/app", "keep", b"content a")
    v2.push_image("gone/app", "also", b"content a")  # the same manifest under a second tag
    other, _ = v2.push_image("gone/app", "other", b"content b")
    refused = anonymous.request("DELETE", "/v2/gone/app/manifests/keep")
    assert refused.status_code == 401
    deleted_tag = v2.request("DELETE", "/v2/gone/app/manifests/other")
    assert deleted_tag.status_code == 202
    assert error_codes(v2.request("GET", "/v2/gone/app/manifests/other")) == ["MANIFEST_UNKNOWN"]
    # The manifest outlives its tag and stays reachable by digest.
    assert v2.request("GET", f"/v2/gone/app/manifests/{other}").status_code == 200
    deleted = v2.request("DELETE", f"/v2/gone/app/manifests/{digest}")
    assert deleted.status_code == 202
    for reference in ("keep", "also", digest):
        gone = v2.request("GET", f"/v2/gone/app/manifests/{reference}")
        assert gone.status_code == 404 and error_codes(gone) == ["MANIFEST_UNKNOWN"]
    assert v2.request("GET", "/v2/gone/app/tags/list").json()["tags"] == []
    again = v2.request("DELETE", f"/v2/gone/app/manifests/{digest}")
    assert again.status_code == 404 and error_codes(again) == ["MANIFEST_UNKNOWN"]
