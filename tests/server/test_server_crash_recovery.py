"""Crashes and lost data, for real: `kill -9` of gunicorn workers in the middle of uploads
(plain and OCI chunked), and a storage that lost blobs. The registry takes back what no live
process owns when a worker starts; `pyrkt-registry gc` (and its dry run, truthfully) repairs
both directions: blobs no row names, and rows whose blob is gone (pushing again restores)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from live_registry import LiveRegistry
from server_images import build_aci
from sqlalchemy import create_engine, text

from registry.client.push import push_image

pytestmark = [pytest.mark.e2e]

NAME = "127.0.0.1/team/crash"


def _workers(registry: LiveRegistry) -> list[int]:
    assert registry.process is not None
    pid = registry.process.pid
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _kill_workers(registry: LiveRegistry) -> None:
    """kill -9 every worker; gunicorn's master starts new ones (whose app starts afresh)."""
    old = set(_workers(registry))
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = set(_workers(registry))
        if now and not now & old and len(now) == registry.workers:
            try:
                if requests.get(registry.url("/_health"), timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
        time.sleep(0.2)
    raise AssertionError("the workers did not come back")


def _start_slow_upload(registry: LiveRegistry) -> socket.socket:
    """An upload whose body stops after 200 KB: its spool file exists and stays open."""
    sock = socket.create_connection(("127.0.0.1", registry.port), timeout=30)
    sock.sendall((f"POST /_api/v1/repositories/{NAME}/-/images HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Authorization: Bearer {registry.token}\r\n"
                  "Content-Type: application/octet-stream\r\nContent-Length: 50000000\r\n\r\n")
                 .encode() + os.urandom(200_000))
    return sock


def _spool_files(registry: LiveRegistry) -> list[Path]:
    return sorted((registry.data_dir / "storage" / ".uploads").glob("*.part"))


def _wait_for(predicate, timeout: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _gc(registry: LiveRegistry, *args: str) -> dict:  # type: ignore[type-arg]
    return json.loads(registry.cli("gc", "--json", *args).stdout)


@pytest.fixture
def registry(tmp_path):  # type: ignore[no-untyped-def]
    # The health check's blob audit is not cached here, so it shows each change at once.
    env = {"PYRKT_REGISTRY_ACCESS_LOG": "", "PYRKT_REGISTRY_HEALTH_BLOB_AUDIT_INTERVAL": "0"}
    with LiveRegistry(tmp_path / "registry", env=env) as live:
        yield live


def test_kill_9_during_uploads_leaves_nothing_once_the_workers_restart(registry, tmp_path):
    doomed = [_start_slow_upload(registry) for _ in range(3)]
    assert _wait_for(lambda: len(_spool_files(registry)) == 3)
    time.sleep(2.5)  # older than the youngest age a spool file may be reclaimed at
    # Alive and slow: neither the dry run nor gc may take them.
    assert _gc(registry, "--dry-run")["stale_uploads_removed"] == 0
    assert _gc(registry)["stale_uploads_removed"] == 0 and len(_spool_files(registry)) == 3
    _kill_workers(registry)
    # The new workers took the dead uploads' spool files back when they started.
    assert _spool_files(registry) == []
    for sock in doomed:
        sock.close()
    # And the registry works: a real push and download after the crash.
    image = build_aci(tmp_path / "img", NAME)
    push_image(image, registry_url=registry.base_url, token=registry.token)
    got = requests.get(registry.url(f"/_aci/{NAME}/1.0/linux/amd64/image.aci"), timeout=30)
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(image.read_bytes()).digest()


def test_kill_9_during_a_chunked_oci_upload(registry):
    headers = {"Authorization": f"Bearer {registry.token}"}
    started = requests.post(registry.url("/v2/team/crash/blobs/uploads/"), headers=headers,
                            timeout=30)
    assert started.status_code == 202, started.text
    upload_id = started.headers["Docker-Upload-UUID"]
    chunk = requests.patch(registry.url(started.headers["Location"]), data=b"a" * 100_000,
                           headers={**headers, "Content-Type": "application/octet-stream"},
                           timeout=30)
    assert chunk.status_code == 202
    spool = registry.data_dir / "tmp" / "oci-uploads"
    # A second chunk is being sent when the worker dies.
    sock = socket.create_connection(("127.0.0.1", registry.port), timeout=30)
    sock.sendall((f"PATCH {started.headers['Location']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Authorization: Bearer {registry.token}\r\nContent-Range: 100000-199999\r\n"
                  "Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n")
                 .encode() + b"b" * 50_000)
    time.sleep(1)  # the worker is inside the PATCH, reading its body
    # An abandoned spool file no row names (a crash between the file and the row).
    orphan = spool / "00000000-0000-4000-8000-000000000000"
    orphan.write_bytes(b"left over")
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    _kill_workers(registry)
    sock.close()
    # Recent: the client may still resume it; only the orphan file goes.
    assert _gc(registry, "--dry-run")["oci_uploads_removed"] == 1
    assert orphan.exists()
    assert _gc(registry)["oci_uploads_removed"] == 1 and not orphan.exists()
    assert (spool / upload_id).exists()
    # The client resumes from what was accepted (the half chunk was not).
    status = requests.get(registry.url(started.headers["Location"]), headers=headers, timeout=30)
    assert status.status_code == 204 and status.headers["Range"] == "0-99999"
    # Abandoned for over the stale age: the dry run says so truly, gc removes row and file.
    _age_upload(registry, upload_id, timedelta(hours=2))
    assert _gc(registry, "--dry-run")["oci_uploads_removed"] == 1
    assert (spool / upload_id).exists()
    assert _gc(registry)["oci_uploads_removed"] == 1
    assert not (spool / upload_id).exists()
    gone = requests.get(registry.url(started.headers["Location"]), headers=headers, timeout=30)
    assert gone.status_code == 404
    assert _gc(registry, "--dry-run")["oci_uploads_removed"] == 0


def _age_upload(registry: LiveRegistry, upload_id: str, by: timedelta) -> None:
    engine = create_engine(f"sqlite:///{registry.data_dir / 'registry.db'}")
    try:
        with engine.begin() as connection:
            rows = connection.execute(text("SELECT updated_at FROM oci_uploads WHERE id = :id"),
                                      {"id": upload_id}).scalars().all()
            assert rows
            from datetime import UTC, datetime

            connection.execute(text("UPDATE oci_uploads SET updated_at = :t WHERE id = :id"),
                               {"t": (datetime.now(UTC) - by).replace(tzinfo=None),
                                "id": upload_id})
    finally:
        engine.dispose()


def test_gc_repairs_both_directions_and_a_push_restores(registry, tmp_path):
    images = [build_aci(tmp_path / f"img{n}", NAME, version=f"{n}.0") for n in (1, 2, 3)]
    for image in images:
        push_image(image, registry_url=registry.base_url, token=registry.token)
    blobs = registry.data_dir / "storage" / "blobs"
    lost = hashlib.sha256(images[1].read_bytes()).hexdigest()
    lost_file = next(blobs.rglob(lost))
    lost_file.unlink()  # the storage lost version 2.0's blob
    stray = blobs / "sha256" / "ff" / ("f" * 64)  # a blob no row names, from long ago
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"orphan")
    old = time.time() - 7200
    os.utime(stray, (old, old))
    health = requests.get(registry.url("/_health"), timeout=10).json()
    assert health["missing_blobs"] == 1 and not health["ok"] and health["serving"]

    dry = _gc(registry, "--dry-run")
    assert dry["missing_blobs"] == [f"sha256:{lost}"]
    assert dry["versions_removed"] == [f"{NAME}:2.0 (linux/amd64)"]
    assert dry["blobs_removed"] == [f"blobs/sha256/ff/{'f' * 64}"]
    assert stray.exists()
    assert requests.get(registry.url(f"/_aci/{NAME}/2.0/linux/amd64/image.aci"),
                        timeout=10).status_code == 404  # listed, but its bytes are gone
    versions = registry.api("GET", f"/repositories/{NAME}/-/images").json()["images"]
    assert sorted(v["version"] for v in versions) == ["1.0", "2.0", "3.0"]

    done = _gc(registry)
    assert done["versions_removed"] == dry["versions_removed"]
    assert not stray.exists()
    versions = registry.api("GET", f"/repositories/{NAME}/-/images").json()["images"]
    assert sorted(v["version"] for v in versions) == ["1.0", "3.0"]
    again = _gc(registry, "--dry-run")
    assert again["missing_blobs"] == [] and again["blobs_removed"] == []

    # Pushing the same ACI again restores the version, byte for byte.
    push_image(images[1], registry_url=registry.base_url, token=registry.token)
    got = requests.get(registry.url(f"/_aci/{NAME}/2.0/linux/amd64/image.aci"), timeout=30)
    assert got.status_code == 200 and got.content == images[1].read_bytes()
    assert requests.get(registry.url("/_health"), timeout=10).json()["missing_blobs"] == 0


def test_gc_refuses_to_drop_every_image_when_the_storage_looks_wrong(registry, tmp_path):
    for n in (1, 2):
        push_image(build_aci(tmp_path / f"img{n}", NAME, version=f"{n}.0"),
                   registry_url=registry.base_url, token=registry.token)
    for blob in (registry.data_dir / "storage" / "blobs").rglob("*"):
        if blob.is_file():
            blob.unlink()
    report = _gc(registry)
    assert len(report["missing_blobs"]) == 2 and report["versions_removed"] == []
    assert "nothing was removed" in report["missing_kept"]
    versions = registry.api("GET", f"/repositories/{NAME}/-/images").json()["images"]
    assert len(versions) == 2
