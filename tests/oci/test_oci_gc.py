"""Garbage collection of OCI content (registry.server.oci.gc) on a live registry's data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from live_registry import LiveRegistry
from v2_client import V2, error_codes, sha256, stored_oci_files

from registry.server.db import make_engine, make_session_factory
from registry.server.oci.gc import collect_oci_garbage
from registry.server.storage import LocalStorage

pytestmark = [pytest.mark.e2e]


def test_gc_removes_what_no_manifest_references(registry: LiveRegistry, v2: V2) -> None:
    kept, kept_doc = v2.push_image("gc/app", "kept", b"kept layer")
    dropped, dropped_doc = v2.push_image("gc/app", "dropped", b"dropped layer")
    assert v2.request("DELETE", f"/v2/gc/app/manifests/{dropped}").status_code == 202
    dropped_layer = dropped_doc["layers"][0]["digest"]
    hexdigest = dropped_layer.split(":", 1)[1]
    assert f"blobs/sha256/{hexdigest[:2]}/{hexdigest}" in stored_oci_files(registry)

    engine = make_engine(f"sqlite:///{registry.data_dir / 'registry.db'}")
    try:
        with make_session_factory(engine)() as session:
            storage = LocalStorage(registry.data_dir / "storage")
            spool = registry.data_dir / "tmp" / "oci-uploads"
            before = stored_oci_files(registry)
            dry = collect_oci_garbage(session, storage, spool, dry_run=True,
                                      grace=timedelta(0))
            assert dry.links_removed >= 2 and stored_oci_files(registry) == before
            report = collect_oci_garbage(session, storage, spool, grace=timedelta(0))
    finally:
        engine.dispose()
    assert report.links_removed >= 2  # the dropped manifest's config and layer
    assert f"blobs/sha256/{hexdigest[:2]}/{hexdigest}" not in stored_oci_files(registry)
    gone = v2.request("GET", f"/v2/gc/app/blobs/{dropped_layer}")
    assert gone.status_code == 404 and error_codes(gone) == ["BLOB_UNKNOWN"]
    # What the remaining tag needs is untouched.
    assert v2.request("GET", "/v2/gc/app/manifests/kept").headers["Docker-Content-Digest"] == kept
    layer = kept_doc["layers"][0]["digest"]
    assert v2.request("GET", f"/v2/gc/app/blobs/{layer}").content == b"kept layer"
    assert layer == sha256(b"kept layer")


def test_unknown_endpoints_answer_in_the_distribution_format(v2: V2) -> None:
    for method, path in (("GET", "/v2/team/app/nothing"), ("POST", "/v2/team/app/manifests/x")):
        response = v2.request(method, path)
        assert response.status_code == 404 and error_codes(response) == ["UNSUPPORTED"]
