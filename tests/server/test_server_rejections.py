"""Every rejected upload answers a 4xx JSON error naming the problem and changes nothing:
the database rows and the stored objects (temporaries included) are exactly as before.

Runs on local storage and on S3 (moto's server over HTTP)."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from s3server import create_bucket
from server_app import make_test_registry
from server_images import build_aci, manifest_dict

from registry.signing import generate_key, sign_detached

NAME = "127.0.0.1/team/app"
MAX_UPLOAD = 2 * 1024 * 1024


@pytest.fixture(scope="module", params=["local", "s3"])
def registry(request, tmp_path_factory, registry_key_file):  # type: ignore[no-untyped-def]
    settings: dict[str, object] = {"max_upload": MAX_UPLOAD}
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        settings.update(storage="s3", s3_bucket=create_bucket(endpoint), s3_endpoint=endpoint.url,
                        s3_access_key=endpoint.access_key, s3_secret_key=endpoint.secret_key,
                        s3_region=endpoint.region)
    registry = make_test_registry(tmp_path_factory.mktemp(f"rejections-{request.param}"),
                                  registry_key_file, **settings)
    seed = build_aci(tmp_path_factory.mktemp("seed"), NAME, version="0.9")
    response = registry.upload(NAME, seed)
    assert response.status_code == 201, response.json
    # A reader (read role only) for the "no write role" case.
    assert registry.api("POST", "/users", json={"username": "reader", "password": "reader-pass-1"}).status_code == 201
    assert registry.api("PUT", f"/repositories/{NAME}/-/roles/reader", json={"role": "read"}).status_code == 200
    registry.reader_token = registry.new_token("reader")
    return registry


def raw_aci(manifest: dict | bytes, extra: list[tuple[str, bytes]] = ()) -> bytes:  # type: ignore[assignment]
    """An uncompressed tar with a manifest as given (no validation: for bad inputs)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        data = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        rootfs = tarfile.TarInfo("rootfs")
        rootfs.type = tarfile.DIRTYPE
        tar.addfile(rootfs)
        for name, content in extra:
            member = tarfile.TarInfo(name)
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
    return out.getvalue()


def assert_rejected(registry, response, status: int, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, (response.status_code, response.data[:500])
    assert response.mimetype == "application/json"
    error = response.json["error"]
    assert error["code"] and error["message"]
    for word in words:
        assert word in error["message"], error["message"]


@pytest.fixture
def unchanged(registry):  # type: ignore[no-untyped-def]
    before = registry.snapshot()
    yield
    assert registry.snapshot() == before


def test_bad_manifest(registry, unchanged):
    bad = manifest_dict(NAME)
    bad["acKind"] = "PodManifest"
    assert_rejected(registry, registry.upload(NAME, raw_aci(bad)), 400, "invalid ACI")
    assert_rejected(registry, registry.upload(NAME, raw_aci(b"{not json")), 400, "invalid ACI")
    bad_arch = manifest_dict(NAME, arch="x86_64")
    assert_rejected(registry, registry.upload(NAME, raw_aci(bad_arch)), 400, "x86_64")


def test_wrong_name_for_repository(registry, unchanged, tmp_path):
    other = build_aci(tmp_path, "127.0.0.1/team/other")
    assert_rejected(registry, registry.upload(NAME, other), 400, "127.0.0.1/team/other", NAME)


def test_name_outside_hosted_domains(registry, unchanged, tmp_path):
    foreign = build_aci(tmp_path, "example.com/team/app")
    assert_rejected(registry, registry.upload("example.com/team/app", foreign), 400, "example.com")


def test_missing_labels_and_version(registry, unchanged, tmp_path):
    no_arch = raw_aci(manifest_dict(NAME, os_name=None, arch=None))
    assert_rejected(registry, registry.upload(NAME, no_arch), 400, "os and arch")
    no_version = build_aci(tmp_path, NAME, version=None)
    assert_rejected(registry, registry.upload(NAME, no_version), 400, "version")
    labelled = build_aci(tmp_path, NAME, version="2.0")
    assert_rejected(registry, registry.upload(NAME, labelled, version="3.0"), 400, "2.0", "3.0")


def test_deeply_nested_manifest_is_a_400_not_a_crash(registry, unchanged):
    from hostile_archives import NESTED_MANIFEST

    response = registry.upload(NAME, raw_aci(NESTED_MANIFEST), version="7.0")
    assert_rejected(registry, response, 400, "invalid ACI", "nested deeper than 64 levels")
    assert response.json["error"]["code"] == "invalid-aci-manifest-too-deep"


@pytest.mark.parametrize("entry,words", [
    ("rootfs/" + "n" * 300, ("component of 300 bytes", "255")),
    ("rootfs/" + "/".join(["d" * 99] * 50), ("5006 bytes", "4095")),
])
def test_unextractable_paths_are_refused_at_upload(registry, unchanged, entry, words):
    response = registry.upload(NAME, raw_aci(manifest_dict(NAME, version="7.1"),
                                             [(entry, b"x")]))
    assert_rejected(registry, response, 400, "invalid ACI", *words)
    assert response.json["error"]["code"] == "invalid-aci-path-too-long"


def test_version_taken_by_another_image(registry, unchanged, tmp_path):
    different = build_aci(tmp_path, NAME, version="0.9", payload=b"another build of 0.9\n")
    assert_rejected(registry, registry.upload(NAME, different), 409, "0.9")


def test_hostile_archives(registry, unchanged, tmp_path):
    from hostile_archives import build_corpus

    corpus = build_corpus(tmp_path / "corpus")
    assert corpus
    for case in corpus:
        response = registry.upload(NAME, case.path, version="6.6.6")
        if case.stage == "read":
            # The format core's own verdict, passed through: reason in the code, its words.
            assert_rejected(registry, response, 400, "invalid ACI", case.message)
            assert case.reason in response.json["error"]["code"], (case.name, response.json)
        else:
            # Well-formed archives that only extraction refuses (device nodes): this one is
            # named for another repository, which the registry refuses.
            assert_rejected(registry, response, 400, "does not match repository")


def test_signature_by_unknown_key(registry, unchanged, tmp_path):
    image = build_aci(tmp_path, NAME, version="4.0")
    stranger = generate_key("stranger <s@example.com>", cipher="cv25519")
    signature = sign_detached(stranger, image)
    assert_rejected(registry, registry.upload(NAME, image, signature=signature), 400,
                    "unknown key")
    assert_rejected(registry, registry.upload(NAME, image, signature=b"garbage"), 400, "signature")


def test_over_the_size_limit(registry, unchanged, tmp_path):
    big = build_aci(tmp_path, NAME, version="5.0", size=MAX_UPLOAD * 2)
    assert_rejected(registry, registry.upload(NAME, big), 413, str(MAX_UPLOAD))
    # Without a Content-Length the limit is enforced while streaming.
    response = registry.api("POST", f"/repositories/{NAME}/-/images",
                            input_stream=io.BytesIO(big.read_bytes()),
                            environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
                            headers={"Content-Type": "application/octet-stream"})
    assert not response.request.environ.get("CONTENT_LENGTH")
    assert_rejected(registry, response, 413, str(MAX_UPLOAD))


def test_missing_or_invalid_token(registry, unchanged, tmp_path):
    image = build_aci(tmp_path, NAME, version="7.0")
    assert_rejected(registry, registry.upload(NAME, image, token=None), 401, "authentication required")
    assert_rejected(registry, registry.upload(NAME, image, token="pyrkt_not-a-real-token"), 401,
                    "invalid")


def test_revoked_token(registry, tmp_path):
    image = build_aci(tmp_path, NAME, version="7.1")
    revoked = registry.new_token("admin")
    newest = max(t["id"] for t in registry.api("GET", "/users/admin/tokens").json["tokens"])
    assert registry.api("DELETE", f"/tokens/{newest}").status_code == 200
    before = registry.snapshot()
    assert_rejected(registry, registry.upload(NAME, image, token=revoked), 401, "invalid")
    assert registry.snapshot() == before


def test_no_write_role(registry, unchanged, tmp_path):
    image = build_aci(tmp_path, NAME, version="8.0")
    assert_rejected(registry, registry.upload(NAME, image, token=registry.reader_token), 403,
                    "write role")
    # A new repository needs an administrator; to others it looks like any unknown name.
    other = build_aci(tmp_path, "127.0.0.1/team/new")
    assert_rejected(registry, registry.upload("127.0.0.1/team/new", other,
                                              token=registry.reader_token), 404, "not found")


def test_empty_body(registry, unchanged):
    assert_rejected(registry, registry.upload(NAME, b""), 400)
