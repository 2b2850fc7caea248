"""The pure parts of the /v2/ API: name mapping, bearer tokens, scopes, pages, manifests."""

from __future__ import annotations

import hashlib
import io
import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.server.oci import tokens
from registry.server.oci.blobs import storage_key, store_verified
from registry.server.oci.errors import OciError
from registry.server.oci.manifests import (
    MAX_MANIFEST_SIZE,
    MAX_PAGE,
    OCI_INDEX,
    OCI_MANIFEST,
    page_size,
    parse,
    read_body,
    references,
)
from registry.server.oci.names import appc_name, check_reference, oci_name
from registry.server.storage import LocalStorage

DOMAINS = ("127.0.0.1", "example.com")
component = st.from_regex(r"[a-z0-9]{1,8}([._-][a-z0-9]{1,8}){0,2}", fullmatch=True)


@given(st.lists(component, min_size=1, max_size=4))
def test_names_round_trip(parts: list[str]) -> None:
    name = "/".join(parts)
    mapped = appc_name(name, DOMAINS)
    assert mapped == name if parts[0] in DOMAINS and len(parts) > 1 else \
        mapped == f"127.0.0.1/{name}"
    assert appc_name(oci_name(mapped, DOMAINS), DOMAINS) == mapped


def test_name_mapping_examples() -> None:
    assert appc_name("team/app", DOMAINS) == "127.0.0.1/team/app"
    assert appc_name("example.com/team/app", DOMAINS) == "example.com/team/app"
    assert appc_name("example.com", DOMAINS) == "127.0.0.1/example.com"
    assert oci_name("127.0.0.1/team/app", DOMAINS) == "team/app"
    assert oci_name("example.com/team/app", DOMAINS) == "example.com/team/app"
    for bad in ("Team/app", "a__b", "a--b", "/app", "app/", "a" * 256, "a//b"):
        with pytest.raises(OciError) as caught:
            appc_name(bad, DOMAINS)
        assert caught.value.code == "NAME_INVALID"


def test_references() -> None:
    assert check_reference("v1.0_rc-1") == "v1.0_rc-1"
    assert check_reference("sha256:" + "a" * 64)
    for bad in ("-v1", ".v1", "a" * 129, "sha256:abc", "v1/x"):
        with pytest.raises(OciError):
            check_reference(bad)


def test_tokens_carry_grants_and_expire() -> None:
    token, grant = tokens.issue("secret", 7, {"team/app": {"pull", "push"}})
    checked = tokens.verify("secret", token)
    assert checked is not None and checked.user_id == 7
    assert checked.allows("team/app", "push") and not checked.allows("team/app", "delete")
    assert not checked.allows("team/other", "pull")
    assert tokens.verify("other secret", token) is None
    assert tokens.verify("secret", token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert tokens.verify("secret", "pyrkt_api-token") is None
    expired, _ = tokens.issue("secret", None, {}, lifetime=-1)
    assert tokens.verify("secret", expired) is None
    assert grant.expires > time.time()


def test_scopes() -> None:
    parsed = tokens.parse_scopes(["repository:team/app:pull,push registry:catalog:*",
                                  "nonsense", "repository:x:"])
    assert parsed == [tokens.Scope("repository", "team/app", ("pull", "push")),
                      tokens.Scope("registry", "catalog", ("*",))]
    assert len(tokens.parse_scopes(["repository:a:pull"] * 1000)) == tokens.MAX_SCOPES


def test_page_size_is_capped_and_checked() -> None:
    assert page_size(None) == MAX_PAGE
    assert page_size("1000000000") == MAX_PAGE
    assert page_size("3") == 3 and page_size("0") == 0
    for bad in ("-1", "x", "1e9", "9" * 31):
        with pytest.raises(OciError):
            page_size(bad)


def test_manifest_parsing() -> None:
    digest = "sha256:" + "b" * 64
    document = {"schemaVersion": 2, "config": {"digest": digest}, "layers": [{"digest": digest}]}
    parsed, media_type = parse(json.dumps(document).encode(), "application/json")
    assert media_type == OCI_MANIFEST and references(parsed, media_type) == [digest, digest]
    index = {"schemaVersion": 2, "manifests": [{"digest": digest}]}
    assert parse(json.dumps(index).encode(), "")[1] == OCI_INDEX
    with pytest.raises(OciError):
        parse(json.dumps({**document, "mediaType": OCI_INDEX}).encode(), OCI_MANIFEST)
    with pytest.raises(OciError):
        references({"schemaVersion": 2, "config": {"digest": "md5:x"}, "layers": []},
                   OCI_MANIFEST)
    with pytest.raises(OciError) as caught:
        read_body(io.BytesIO(b" " * (MAX_MANIFEST_SIZE + 10)))
    assert caught.value.status == 413


def test_store_verified_commits_only_matching_content(tmp_path) -> None:
    storage = LocalStorage(tmp_path / "storage")
    data = b"x" * 5000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    wrong = "sha256:" + "0" * 64
    with pytest.raises(OciError) as mismatch:
        store_verified(storage, io.BytesIO(data), wrong, limit=10_000)
    assert mismatch.value.code == "DIGEST_INVALID"
    with pytest.raises(OciError) as too_big:
        store_verified(storage, io.BytesIO(data), digest, limit=4999)
    assert too_big.value.status == 413 and too_big.value.code == "SIZE_INVALID"
    assert list(storage.iter_keys("")) == []
    assert [p for p in (tmp_path / "storage").rglob("*") if p.is_file()] == []
    assert store_verified(storage, io.BytesIO(data), digest, limit=10_000) == len(data)
    assert list(storage.iter_keys("")) == [storage_key(digest)]
