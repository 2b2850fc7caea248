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
from bisect import bisect_left
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
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                   float("inf"))
LATENCY = Histogram("pyrkt_http_request_duration_seconds",
                    "Seconds from a request's arrival to its response's headers.", ["endpoint"],
                    buckets=LATENCY_BUCKETS)
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


# The labelled children are looked up once and kept: `labels()` costs as much as the
# increment, and discovery answers in a few microseconds.
_request_children: dict[tuple[str, str, str], Any] = {}
_endpoint_children: dict[str, tuple[Any, Any, Any]] = {}


def _requests_child(endpoint: str, method: str, code: str) -> Any:
    key = (endpoint, method, code)
    found = _request_children.get(key)
    if found is None:
        found = _request_children[key] = REQUESTS.labels(endpoint, method, code)
    return found


def _children_of(endpoint: str) -> tuple[Any, Any, Any]:
    """(latency, bytes sent, bytes received) of an endpoint."""
    found = _endpoint_children.get(endpoint)
    if found is None:
        found = _endpoint_children[endpoint] = (
            LATENCY.labels(endpoint), BYTES_SENT.labels(endpoint), BYTES_RECEIVED.labels(endpoint))
    return found


def count_request(endpoint: str, method: str, code: str, seconds: float,
                  sent: int | None, received: int | None = None) -> None:
    """One answered request, counted by `MetricsMiddleware` (the discovery lane, which answers
    before any WSGI layer, counts the same through a `Tally`). `sent` is the response's
    Content-Length (None: unknown; never counted for HEAD), `received` the request body's."""
    _requests_child(endpoint, method, code).inc()
    latency, sent_total, received_total = _children_of(endpoint)
    latency.observe(seconds)
    sent, received = _bytes_counted(method, sent, received)
    if sent:
        sent_total.inc(sent)
    if received:
        received_total.inc(received)


def _bytes_counted(method: str, sent: int | None, received: int | None) -> tuple[int, int]:
    return ((sent or 0) if method != "HEAD" else 0,
            (received or 0) if method in BODY_METHODS else 0)


class Tally:
    """Requests counted in memory, added to the Prometheus values in one go by `flush`.

    For the discovery lane (registry/server/lane.py), whose answers take a few microseconds:
    in multiprocess mode every increment takes a lock and writes a memory-mapped file, and
    four of them per request would cost as much again as the answer. The worker flushes once
    its event loop comes round, right after the answers of that round are sent (a scrape,
    even one answered by another worker, sees them). What is counted is what
    `count_request` counts for each request."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.requests: dict[tuple[str, str], int] = {}  # (method, code) -> answers
        self.buckets = [0] * len(LATENCY_BUCKETS)  # observations per latency bucket
        self.seconds = 0.0
        self.sent = 0
        self.received = 0

    def add(self, method: str, code: str, seconds: float, sent: int | None,
            received: int | None = None) -> None:
        key = (method, code)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.seconds += seconds
        sent, received = _bytes_counted(method, sent, received)
        self.sent += sent
        self.received += received

    def flush(self) -> None:
        if not self.requests:
            return
        for (method, code), count in self.requests.items():
            _requests_child(self.endpoint, method, code).inc(count)
        latency, sent_total, received_total = _children_of(self.endpoint)
        # A histogram child keeps one counter per bucket and one for the sum (what observe()
        # increments); tests/server/test_server_metrics.py checks this equals observe().
        for bucket, count in zip(latency._buckets, self.buckets, strict=True):
            if count:
                bucket.inc(count)
        latency._sum.inc(self.seconds)
        if self.sent:
            sent_total.inc(self.sent)
        if self.received:
            received_total.inc(self.received)
        self.requests = {}
        self.buckets = [0] * len(LATENCY_BUCKETS)
        self.seconds = 0.0
        self.sent = self.received = 0


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
