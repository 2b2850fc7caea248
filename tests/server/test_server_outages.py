"""Failing backends for real, under concurrent uploads and downloads: this test's own
PostgreSQL cluster stopped and started, its own moto S3 server frozen (SIGSTOP/SIGCONT) and
killed and restarted empty. During an outage every answer is a 503 with Retry-After within a
bounded time (no 500, no bare server page, no hung connection); the registry recovers by
itself (no restart, no health probe; a lost bucket is made again where storage is used); no
acknowledged upload is lost to a database or a frozen-storage outage."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from live_registry import LiveRegistry, s3_settings
from outage_kit import RestartableMoto, ThrowawayPostgres
from server_images import build_aci

from registry.client.push import push_image

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

NAME = "127.0.0.1/team/outage"
UPLOADERS, DOWNLOADERS = 12, 12
OUTAGE = 6.0
BOUND = 15.0  # the longest any answer may take, outage or not


@dataclass
class Sample:
    kind: str
    start: float
    seconds: float
    status: int | None
    error: str | None = None
    retry_after: str | None = None
    body: str = ""
    version: str | None = None


@dataclass
class Load:
    registry: LiveRegistry
    images: dict[str, list[Path]]
    download_url: str
    expected: str
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _record(self, kind: str, call, version: str | None = None) -> requests.Response | None:  # type: ignore[no-untyped-def]
        start = time.monotonic()
        try:
            response = call()
        except requests.RequestException as error:
            self.samples.append(Sample(kind, start, time.monotonic() - start, None,
                                       error=type(error).__name__, version=version))
            return None
        self.samples.append(Sample(kind, start, time.monotonic() - start, response.status_code,
                                   retry_after=response.headers.get("Retry-After"),
                                   body=response.text[:4000] if response.status_code >= 300
                                   else "", version=version))
        return response

    def upload(self, worker: str) -> None:
        for image in self.images[worker]:
            version = image.stem.split("-")[1]
            while not self.stop.is_set():  # as a client does: after a 503, the same again
                with image.open("rb") as body:
                    answer = self._record("upload", lambda body=body: requests.post(
                        self.registry.url(f"/_api/v1/repositories/{NAME}/-/images"), data=body,
                        headers={"Authorization": f"Bearer {self.registry.token}",
                                 "Content-Type": "application/octet-stream"}, timeout=60),
                        version=version)
                time.sleep(0.3)
                if answer is None or answer.status_code != 503:
                    break

    def download(self) -> None:
        while not self.stop.is_set():
            response = self._record("download", lambda: requests.get(self.download_url,
                                                                      timeout=60))
            if response is not None and response.status_code == 200:
                assert hashlib.sha256(response.content).hexdigest() == self.expected
            time.sleep(0.1)


def _images(tmp_path: Path, per_worker: int = 12) -> dict[str, list[Path]]:
    images = {}
    for worker in range(UPLOADERS):
        images[str(worker)] = [build_aci(tmp_path / "images" / f"{worker}-{n}", NAME,
                                         version=f"{worker}.{n}", filename=f"img-{worker}.{n}")
                               for n in range(per_worker)]
    return images


def _run(load: Load, outage) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    threads = [threading.Thread(target=load.upload, args=(w,)) for w in load.images]
    threads += [threading.Thread(target=load.download) for _ in range(DOWNLOADERS)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    began = time.monotonic()
    outage()
    ended = time.monotonic()
    time.sleep(8)
    load.stop.set()
    for thread in threads:
        thread.join(120)
    return began, ended


def _check_answers(load: Load, began: float, ended: float) -> dict[str, object]:
    statuses = [s.status for s in load.samples]
    errors = [s for s in load.samples if s.status is None]
    assert not errors, [(s.kind, s.error) for s in errors]
    assert set(statuses) <= {200, 201, 503}, sorted({s for s in statuses})
    unavailable = [s for s in load.samples if s.status == 503]
    assert unavailable, "the outage was never seen"
    for sample in unavailable:
        assert sample.retry_after and sample.retry_after.isdigit(), sample
        if sample.kind == "upload":
            assert json.loads(sample.body)["error"]["code"] == "unavailable", sample.body
        else:
            assert "503 Service Unavailable" in sample.body, sample.body
        assert "127.0.0.1:" not in sample.body  # no internal address reaches a client
    slowest = max(s.seconds for s in load.samples)
    assert slowest < BOUND, slowest
    # Recovered by itself: uploads and downloads succeed again after the outage.
    after = [s for s in load.samples if s.start > ended + 4]
    assert any(s.kind == "upload" and s.status == 201 for s in after)
    assert any(s.kind == "download" and s.status == 200 for s in after)
    return {"answers": len(statuses), "503": len(unavailable), "slowest_s": round(slowest, 2),
            "uploads_acknowledged": sum(1 for s in load.samples if s.status == 201)}


def _verify_acknowledged(load: Load, registry: LiveRegistry) -> int:
    acknowledged = [s.version for s in load.samples if s.status == 201]
    by_version = {p.stem.split("-")[1]: p for paths in load.images.values() for p in paths}
    for version in acknowledged:
        got = requests.get(registry.url(f"/_aci/{NAME}/{version}/linux/amd64/image.aci"),
                           timeout=60)
        assert got.status_code == 200, (version, got.status_code)
        assert got.content == by_version[version].read_bytes(), version
    return len(acknowledged)


@pytest.fixture
def backends(tmp_path):  # type: ignore[no-untyped-def]
    with ThrowawayPostgres() as pg, RestartableMoto() as s3:
        s3.endpoint.client().create_bucket(Bucket="outage")
        storage = {**s3_settings(s3.endpoint.url, "outage"), "S3_CREATE_BUCKET": "1"}
        env = {"PYRKT_REGISTRY_ACCESS_LOG": "", "PYRKT_REGISTRY_HEALTH_BLOB_AUDIT_INTERVAL": "0"}
        with LiveRegistry(tmp_path / "registry", database_url=pg.url, storage=storage,
                          env=env) as registry:
            seed = build_aci(tmp_path / "seed", NAME, version="seed", size=2 * 1024 * 1024)
            push_image(seed, registry_url=registry.base_url, token=registry.token)
            load = Load(registry, _images(tmp_path),
                        registry.url(f"/_aci/{NAME}/seed/linux/amd64/image.aci"),
                        hashlib.sha256(seed.read_bytes()).hexdigest())
            yield pg, s3, registry, load, seed


def test_postgresql_stopped_and_started(backends, record_property) -> None:
    pg, _s3, registry, load, _seed = backends

    def outage() -> None:
        pg.stop()
        time.sleep(OUTAGE)
        pg.start()

    began, ended = _run(load, outage)
    figures = _check_answers(load, began, ended)
    figures["verified_after"] = _verify_acknowledged(load, registry)
    health = requests.get(registry.url("/_health"), timeout=10)
    assert health.status_code == 200 and health.json()["missing_blobs"] == 0
    print("postgresql outage:", figures)
    record_property("figures", figures)


def test_s3_frozen_and_thawed(backends, record_property) -> None:
    _pg, s3, registry, load, _seed = backends

    def outage() -> None:
        s3.freeze()
        # Longer than the S3 client's whole budget (2 tries of a 3 s read timeout): requests
        # must give up with a 503 rather than wait for the thaw.
        time.sleep(20)
        # /_health answers within its own deadline while S3 is frozen, and says why.
        start = time.monotonic()
        health = requests.get(registry.url("/_health"), timeout=30)
        assert time.monotonic() - start < 5 and health.status_code == 503
        assert "storage" in " ".join(health.json()["problems"])
        s3.thaw()

    began, ended = _run(load, outage)
    figures = _check_answers(load, began, ended)
    figures["verified_after"] = _verify_acknowledged(load, registry)
    print("s3 frozen:", figures)
    record_property("figures", figures)


def test_s3_killed_and_restarted_empty(backends, tmp_path, record_property) -> None:
    _pg, s3, registry, load, seed = backends

    def outage() -> None:
        s3.kill()
        time.sleep(OUTAGE)
        s3.start()  # moto keeps nothing: the bucket and every blob are gone

    began, ended = _run(load, outage)
    # The first uploads after the restart made the bucket again (no health probe was asked).
    statuses = [s.status for s in load.samples]
    assert set(statuses) <= {200, 201, 404, 503}, sorted(set(statuses))
    assert not [s for s in load.samples if s.status is None]
    assert max(s.seconds for s in load.samples) < BOUND
    after = [s for s in load.samples if s.start > ended + 4]
    assert any(s.kind == "upload" and s.status == 201 for s in after)
    # What the empty server lost is reported, not hidden: /_health and gc name the rows.
    health = requests.get(registry.url("/_health"), timeout=10).json()
    assert health["serving"] and health["missing_blobs"] >= 1 and not health["ok"]
    report = json.loads(registry.cli("gc", "--dry-run", "--json").stdout)
    assert len(report["missing_blobs"]) == health["missing_blobs"]
    # Pushing the same ACI again restores a lost version.
    push_image(seed, registry_url=registry.base_url, token=registry.token)
    got = requests.get(load.download_url, timeout=60)
    assert got.status_code == 200 and got.content == seed.read_bytes()
    figures = {"answers": len(statuses), "503": statuses.count(503),
               "missing_after_restart": health["missing_blobs"]}
    print("s3 killed and restarted empty:", figures)
    record_property("figures", figures)
