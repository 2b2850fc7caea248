"""Slow, idle and oversized clients against `pyrkt-registry serve` (real gunicorn, gevent).

Hundreds of connections trickle headers, trickle upload bodies or sit idle while /_health,
a discovery page and a download must keep being answered within a second; the header and
progress deadlines close what never completes; over-long request lines and headers are
refused before the app; downloads from local storage still go out with sendfile.
"""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path

import pytest
import requests
from live_registry import LiveRegistry
from server_images import build_aci
from slow_clients import SlowClients

from registry.client.push import push_image

pytestmark = [pytest.mark.e2e]

NAME = "127.0.0.1/team/slow"
HEADER_TIMEOUT = 2
IO_TIMEOUT = 3


@pytest.fixture(scope="module")
def registry(tmp_path_factory):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("slow")
    env = {"PYRKT_REGISTRY_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
           "PYRKT_REGISTRY_IO_TIMEOUT": str(IO_TIMEOUT), "PYRKT_REGISTRY_ACCESS_LOG": ""}
    with LiveRegistry(work / "registry", env=env) as live:
        image = build_aci(work / "images", NAME, size=32 * 1024 * 1024)
        push_image(image, registry_url=live.base_url, token=live.token)
        live.image = image  # type: ignore[attr-defined]
        yield live


def _timed_get(url: str) -> tuple[float, bytes]:
    start = time.monotonic()
    response = requests.get(url, timeout=10)
    response.raise_for_status()
    return time.monotonic() - start, response.content


def test_health_discovery_and_downloads_stay_fast_under_600_slow_connections(registry) -> None:
    urls = [registry.url("/_health"), registry.url("/team/slow?ac-discovery=1"),
            registry.url(f"/_aci/{NAME}/1.0/linux/amd64/image.aci")]
    expected = hashlib.sha256(registry.image.read_bytes()).hexdigest()
    with SlowClients("127.0.0.1", registry.port, trickle_headers=200, trickle_bodies=200,
                     idle=200, body_path=f"/_api/v1/repositories/{NAME}/-/images") as load:
        assert load.wait_connected(600, timeout=60) >= 590
        latencies = []
        for _round in range(5):
            for url in urls:
                elapsed, body = _timed_get(url)
                latencies.append(elapsed)
                if url.endswith(".aci"):
                    assert hashlib.sha256(body).hexdigest() == expected
        held = load.held
    # The header deadline hangs up on the trickling clients (they reconnect at once), so a
    # few are between two connections at any moment.
    assert held >= 500, held
    assert max(latencies) < 1.0, latencies


def _raw(registry, data: bytes, *, wait: float = 10.0) -> tuple[bytes, float]:  # type: ignore[no-untyped-def]
    """Send `data`, then read until the server closes: (what it answered, seconds taken)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", registry.port), timeout=wait) as sock:
        sock.sendall(data)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return answer, time.monotonic() - start


def test_header_deadline_closes_a_request_that_never_ends(registry) -> None:
    answer, elapsed = _raw(registry, b"GET /_health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
    assert answer == b"" and HEADER_TIMEOUT - 0.5 < elapsed < HEADER_TIMEOUT + 3, elapsed


def test_idle_connection_is_closed_after_the_header_deadline(registry) -> None:
    answer, elapsed = _raw(registry, b"")
    assert answer == b"" and elapsed < HEADER_TIMEOUT + 3, elapsed


def test_stalled_upload_body_is_cut_after_the_progress_deadline(registry) -> None:
    head = (f"POST /_api/v1/repositories/{NAME}/-/images HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {registry.token}\r\nContent-Length: 1000000\r\n\r\n")
    answer, elapsed = _raw(registry, head.encode() + b"x" * 1000, wait=30)
    # The body stops after 1,000 bytes: the server gives up IO_TIMEOUT seconds later.
    assert elapsed < IO_TIMEOUT + 10, elapsed
    assert b" 500 " not in answer.split(b"\r\n", 1)[0]
    # The stalled upload left no spool file behind.
    time.sleep(0.5)
    assert not list((Path(registry.data_dir) / "storage" / ".uploads").glob("*.part"))


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
    (b"GET /_health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", b"431"),
    (b"GET /_health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(150))
     + b"\r\n", b"431"),
], ids=["request-line-over-8k", "header-over-8k", "150-headers"])
def test_oversized_request_heads_are_refused_before_the_app(registry, request_bytes, status) -> None:
    answer, _ = _raw(registry, request_bytes)
    first_line = answer.split(b"\r\n", 1)[0]
    assert first_line.startswith(b"HTTP/1.1 " + status), first_line


def _worker_read_syscalls(registry) -> int:  # type: ignore[no-untyped-def]
    total = 0
    for child in Path(f"/proc/{registry.process.pid}/task/{registry.process.pid}/children") \
            .read_text().split():
        for line in Path(f"/proc/{child}/io").read_text().splitlines():
            if line.startswith("syscr:"):
                total += int(line.split()[1])
    return total


def test_downloads_from_local_storage_use_sendfile(registry) -> None:
    url = registry.url(f"/_aci/{NAME}/1.0/linux/amd64/image.aci")
    size = registry.image.stat().st_size
    before = _worker_read_syscalls(registry)
    _, body = _timed_get(url)
    after = _worker_read_syscalls(registry)
    assert len(body) == size
    # Copying 32 MiB through Python (gevent's fallback reads 8 KiB at a time) costs over 4,000
    # read calls; sendfile moves it without any, so what remains is the request itself.
    assert after - before < 500, after - before


def test_range_downloads_from_local_storage_use_sendfile_too(registry) -> None:
    # A resumed download (Range, as the client's If-Range resume sends) must not read the
    # bytes before the range through Python, nor the range itself.
    url = registry.url(f"/_aci/{NAME}/1.0/linux/amd64/image.aci")
    image = registry.image.read_bytes()
    start = len(image) // 2
    before = _worker_read_syscalls(registry)
    resumed = requests.get(url, headers={"Range": f"bytes={start}-"}, timeout=30)
    after = _worker_read_syscalls(registry)
    assert resumed.status_code == 206 and resumed.content == image[start:]
    assert resumed.headers["Content-Range"] == f"bytes {start}-{len(image) - 1}/{len(image)}"
    assert after - before < 500, after - before
    inner = requests.get(url, headers={"Range": "bytes=1000-1999"}, timeout=30)
    assert inner.status_code == 206 and inner.content == image[1000:2000]
    assert requests.head(url, headers={"Range": "bytes=10-"}, timeout=30).headers[
        "Content-Length"] == str(len(image) - 10)
