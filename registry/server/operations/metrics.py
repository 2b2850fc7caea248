"""Prometheus metrics (`prometheus-client`): what the registry counts and the `/metrics` view.

Counted for every request by `MetricsMiddleware` (outside Flask, so the discovery fast path
is counted too): requests by endpoint, method and status; time to the response's headers
(a histogram per endpoint); bytes sent (the response's Content-Length, so sendfile downloads
are counted without touching their bytes) and received; body-carrying requests in flight.
Counted where they happen: gc and retention runs, versions retention deleted, webhook
deliveries by outcome. Read at scrape time from the index: images stored and their bytes.

Several gunicorn workers: `pyrkt-registry serve` (the gunicorn config's `on_starting` hook)
points PROMETHEUS_MULTIPROC_DIR at an empty folder before the workers start, every worker then
writes its values to memory-mapped files there, a scrape of any worker adds them up, and the
`child_exit` hook retires a dead worker's live gauges. Without that variable (Flask's
development server, tests) the values live in the process.

Access: loopback only unless `metrics_allow` names other networks; a request carrying
`Authorization: Bearer <metrics_token>` is allowed from anywhere.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from registry.server.models import Image

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
ENDPOINT_KEY = "pyrkt.endpoint"
BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))

REQUESTS = Counter("pyrkt_http_requests_total", "HTTP requests answered.",
                   ["endpoint", "method", "code"])
LATENCY = Histogram("pyrkt_http_request_duration_seconds",
                    "Seconds from a request's arrival to its response's headers.", ["endpoint"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                             10, 30))
BYTES_SENT = Counter("pyrkt_http_response_bytes_total",
                     "Bytes of response bodies (by Content-Length).", ["endpoint"])
BYTES_RECEIVED = Counter("pyrkt_http_request_bytes_total",
                         "Bytes of request bodies (by Content-Length).", ["endpoint"])
IN_FLIGHT = Gauge("pyrkt_uploads_in_flight", "Requests with a body (uploads) being handled.",
                  multiprocess_mode="livesum")
GC_RUNS = Counter("pyrkt_gc_runs_total", "Garbage collection runs.", ["dry_run"])
RETENTION_RUNS = Counter("pyrkt_retention_runs_total", "Retention passes (inside gc).",
                         ["dry_run"])
RETENTION_DELETED = Counter("pyrkt_retention_versions_deleted_total",
                            "Versions deleted by retention policies.")
WEBHOOK_DELIVERIES = Counter("pyrkt_webhook_deliveries_total",
                             "Webhook delivery attempts by outcome.", ["outcome"])


class StorageCollector:
    """Images stored and their bytes, read from the index at scrape time."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterable[GaugeMetricFamily]:
        with self.sessions() as session:
            count, size = session.execute(
                select(func.count(Image.id), func.coalesce(func.sum(Image.size), 0))).one()
        images = GaugeMetricFamily("pyrkt_storage_images", "ACI files stored.")
        images.add_metric([], float(count))
        used = GaugeMetricFamily("pyrkt_storage_bytes", "Bytes of the ACI files stored.")
        used.add_metric([], float(size))
        return [images, used]


def exposition(sessions: sessionmaker[Session]) -> tuple[bytes, str]:
    """The text a scrape gets: every worker's values (multiprocess) plus the storage gauges."""
    index = CollectorRegistry()
    index.register(StorageCollector(sessions))  # type: ignore[arg-type]
    if os.environ.get(MULTIPROCESS_ENV):
        workers = CollectorRegistry()
        MultiProcessCollector(workers)
        return generate_latest(workers) + generate_latest(index), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY) + generate_latest(index), CONTENT_TYPE_LATEST


def parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`metrics_allow`: comma-separated addresses or networks ("10.0.0.0/8,::1")."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in text.split(",") if part.strip())


def allowed(remote_addr: str | None, authorization: str | None, *, networks: str,
            token: str) -> bool:
    if token and authorization and authorization.startswith("Bearer ") and \
            hmac.compare_digest(authorization[7:].strip(), token):
        return True
    if not remote_addr:
        return False
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    return any(address in network for network in parse_networks(networks))


_children: dict[tuple[str, str, str], tuple[Any, Any, Any, Any]] = {}


def _children_for(endpoint: str, method: str, code: str) -> tuple[Any, Any, Any, Any]:
    # The labelled children are looked up once per (endpoint, method, status) and kept:
    # `labels()` costs as much as the increment, and discovery answers in a few microseconds.
    key = (endpoint, method, code)
    found = _children.get(key)
    if found is None:
        found = _children[key] = (
            REQUESTS.labels(endpoint, method, code), LATENCY.labels(endpoint),
            BYTES_SENT.labels(endpoint), BYTES_RECEIVED.labels(endpoint))
    return found


def count_request(endpoint: str, method: str, code: str, seconds: float,
                  sent: int | None, received: int | None = None) -> None:
    """One answered request: the one rule for what is counted, used by `MetricsMiddleware` and
    by the gevent worker's discovery lane (registry/server/worker.py), which answers
    `?ac-discovery=1` before any WSGI layer. `sent` is the response's Content-Length (None:
    unknown, or a HEAD answer), `received` the request body's."""
    requests, latency, sent_total, received_total = _children_for(endpoint, method, code)
    requests.inc()
    latency.observe(seconds)
    if sent is not None and method != "HEAD":
        sent_total.inc(sent)
    if received is not None and method in BODY_METHODS:
        received_total.inc(received)


class MetricsMiddleware:
    """Counts every request (WSGI, outermost), leaving the response iterable untouched so
    gunicorn still sends local files with sendfile(2)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        method = environ.get("REQUEST_METHOD", "GET")
        with_body = method in BODY_METHODS
        seen: list[str] = ["500", ""]  # status code, Content-Length

        def counting_start_response(status: str, headers: list[tuple[str, str]],
                                    exc_info: Any = None) -> Any:
            seen[0] = status[:3]
            for name, value in headers:
                if name == "Content-Length" or name.lower() == "content-length":
                    seen[1] = value
                    break
            return start_response(status, headers, exc_info)

        if with_body:
            IN_FLIGHT.inc()
        try:
            return self.app(environ, counting_start_response)
        finally:
            if with_body:
                IN_FLIGHT.dec()
            endpoint = environ.get(ENDPOINT_KEY) or (
                "discovery" if environ.get("QUERY_STRING") == "ac-discovery=1" else "other")
            length = environ.get("CONTENT_LENGTH")
            count_request(endpoint, method, seen[0], time.perf_counter() - started,
                          int(seen[1]) if seen[1].isdigit() else None,
                          int(length) if length and length.isdigit() else None)


def worker_exited(pid: int) -> None:
    """gunicorn's `child_exit`: a dead worker's live gauges stop counting."""
    if os.environ.get(MULTIPROCESS_ENV):
        mark_process_dead(pid)
