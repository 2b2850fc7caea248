"""Prometheus metrics: a scrape of `/metrics` from a two-worker gunicorn registry adds up every
worker's counts; bytes, latency, storage and gc figures; who may read it."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests
from live_registry import LiveRegistry
from prometheus_client.parser import text_string_to_metric_families
from server_app import make_test_registry
from server_images import build_aci

NAME = "127.0.0.1/demo/metered"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _total(samples, name: str, **labels: str) -> float:  # type: ignore[no-untyped-def]
    return sum(value for (sample, got), value in samples.items()
               if sample == name and all((k, v) in got for k, v in labels.items()))


@pytest.mark.e2e
def test_two_workers_scrape_adds_up_every_worker(tmp_path):
    with LiveRegistry(tmp_path / "data", workers=2) as registry:
        aci = build_aci(tmp_path / "images", NAME, version="1.0", size=2 * 1024 * 1024)
        pushed = registry.api("POST", f"/repositories/{NAME}/-/images", data=aci.read_bytes())
        assert pushed.status_code == 201, pushed.text
        size = pushed.json()["size"]
        # start-up's readiness probes hit /_health too: count from here
        before = _total(_samples(requests.get(registry.url("/metrics"), timeout=10).text),
                        "pyrkt_http_requests_total", endpoint="health.health")
        health = 60
        for _ in range(health):  # a new connection each: gunicorn spreads them over workers
            assert requests.get(registry.url("/_health"), timeout=10).status_code == 200
        for _ in range(3):
            got = requests.get(registry.url(f"/_aci/{NAME}/1.0/linux/amd64/image.aci"), timeout=30)
            assert got.status_code == 200 and len(got.content) == size
        assert requests.get(registry.url("/demo/metered?ac-discovery=1"), timeout=10).ok
        assert registry.api("POST", "/gc", params={"dry_run": "1"}).status_code == 200
        totals = set()
        for _ in range(8):  # whichever worker answers, the figures are the same
            answer = requests.get(registry.url("/metrics"), timeout=10)
            assert answer.status_code == 200, answer.text
            assert answer.headers["Content-Type"].startswith("text/plain")
            samples = _samples(answer.text)
            totals.add((_total(samples, "pyrkt_http_requests_total", endpoint="health.health",
                               code="200"),
                        _total(samples, "pyrkt_http_response_bytes_total",
                               endpoint="files.aci_file")))
        assert totals == {(before + health, float(3 * size))}
        assert _total(samples, "pyrkt_http_requests_total", endpoint="api.upload_image",
                      method="POST", code="201") == 1
        assert _total(samples, "pyrkt_http_request_bytes_total",
                      endpoint="api.upload_image") == aci.stat().st_size
        assert _total(samples, "pyrkt_http_requests_total", endpoint="discovery") == 1
        assert _total(samples, "pyrkt_http_request_duration_seconds_count",
                      endpoint="health.health") == before + health
        assert _total(samples, "pyrkt_storage_images") == 1
        assert _total(samples, "pyrkt_storage_bytes") == size
        assert _total(samples, "pyrkt_gc_runs_total", dry_run="true") == 1
        assert _total(samples, "pyrkt_uploads_in_flight") == 0
        # Really two processes counting: each worker wrote its own value files.
        workers = subprocess.run(["pgrep", "-P", str(registry.process.pid)], text=True,
                                 capture_output=True).stdout.split()
        assert len(workers) == 2
        files = {p.name for p in Path(tempfile.gettempdir()).glob("pyrkt-metrics-*/counter_*.db")}
        assert all(f"counter_{pid}.db" in files for pid in workers), (workers, files)


def test_access_is_limited_to_allowed_networks_or_the_token(tmp_path, registry_key_file):
    registry = make_test_registry(tmp_path / "data", registry_key_file,
                                  metrics_allow="10.0.0.0/8", metrics_token="s3cret-token")
    outsider = {"REMOTE_ADDR": "192.0.2.7"}
    assert registry.client.get("/metrics", environ_base=outsider).status_code == 403
    assert registry.client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    assert registry.client.get("/metrics", environ_base=outsider,
                               headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    assert registry.client.get("/metrics", environ_base=outsider,
                               headers={"Authorization": "Bearer wrong"}).status_code == 403
    off = make_test_registry(tmp_path / "off", registry_key_file, metrics=False)
    assert off.client.get("/metrics").status_code == 404
    started = time.monotonic()
    assert off.client.get("/_health").status_code == 200
    assert time.monotonic() - started < 5


def test_a_tally_counts_what_count_request_counts() -> None:
    # The discovery lane adds its answers up in a Tally and flushes them in one go; the
    # figures must be those of counting each answer with count_request (the WSGI path).
    from prometheus_client import REGISTRY

    from registry.server.operations.metrics import LATENCY_BUCKETS, Tally, count_request

    answers = [("GET", "200", 0.0004, 369), ("HEAD", "200", 0.003, 369), ("GET", "200", 0.2, 369),
               ("GET", "200", 0.001, 369), ("POST", "201", 99.0, 10)]
    tally = Tally("tally-test")
    for method, code, seconds, sent in answers:
        tally.add(method, code, seconds, sent, 7)
        count_request("direct-test", method, code, seconds, sent, 7)
    tally.flush()
    tally.flush()  # nothing more to add

    def figures(endpoint: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {(sample.name, tuple(sorted((k, v) for k, v in sample.labels.items()
                                           if k != "endpoint"))): sample.value
                for family in REGISTRY.collect() for sample in family.samples
                if sample.labels.get("endpoint") == endpoint
                and not sample.name.endswith("_created")}

    direct = figures("direct-test")
    assert figures("tally-test") == direct
    assert direct[("pyrkt_http_requests_total", (("code", "200"), ("method", "GET")))] == 3
    assert direct[("pyrkt_http_response_bytes_total", ())] == 3 * 369 + 10
    assert direct[("pyrkt_http_request_bytes_total", ())] == 7
    assert direct[("pyrkt_http_request_duration_seconds_bucket", (("le", "0.001"),))] == 2
    assert direct[("pyrkt_http_request_duration_seconds_count", ())] == len(answers)
    assert len(LATENCY_BUCKETS) == sum(1 for name, _ in direct
                                       if name == "pyrkt_http_request_duration_seconds_bucket")
