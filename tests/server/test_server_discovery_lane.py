"""The gevent worker's discovery lane (registry/server/lane.py, worker.py) against real gunicorn.

Plain `?ac-discovery=1` requests are answered by the worker itself; everything else must reach
gunicorn with its bytes intact, on the same connection, answered exactly as before. The tests
speak raw HTTP over sockets so that what is compared is what goes over the wire.
"""

from __future__ import annotations

import re
import socket
import time

import pytest
import requests
from live_registry import LiveRegistry

from registry.server.lane import HEAD_LIMIT, NEED_MORE, LaneRequest, parse_head

pytestmark = [pytest.mark.e2e]

HEADER_TIMEOUT = 2
DISCOVERY = b"GET /team/app?ac-discovery=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
HEALTH = b"GET /_health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


# -- the request heads the lane takes, and those it leaves to gunicorn -------------------------
def test_parse_head_takes_plain_discovery_requests() -> None:
    head = (b"GET /team/app?ac-discovery=1 HTTP/1.1\r\nHost: Registry.Example:8080\r\n"
            b"User-Agent: rkt/1.30\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
    assert parse_head(head + b"GET /next") == LaneRequest(
        "GET", "/team/app", "Registry.Example:8080", True, len(head))
    root = b"HEAD /?ac-discovery=1 HTTP/1.1\r\nhost: a.example\r\nconnection: Keep-Alive\r\n\r\n"
    assert parse_head(root) == LaneRequest("HEAD", "/", "a.example", False, len(root))


@pytest.mark.parametrize("partial", [b"", b"G", b"HEAD", b"GET /team", DISCOVERY[:-2],
                                     DISCOVERY[:45]])
def test_parse_head_waits_for_the_rest_of_a_discovery_head(partial: bytes) -> None:
    assert parse_head(partial) == NEED_MORE


@pytest.mark.parametrize("head", [
    b"POST /team/app?ac-discovery=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /_health HTTP/1.1\r\n",  # the request line decides before the headers arrive
    b"GET /team/app?ac-discovery=1&x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /team/app?ac-discovery=1 HTTP/1.0\r\nHost: x\r\n\r\n",
    b"GET /Team/App?ac-discovery=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /team%2fapp?ac-discovery=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET http://x/team?ac-discovery=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /team?ac-discovery=1 HTTP/1.1\r\n\r\n",  # no Host
    b"GET /team?ac-discovery=1 HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    b"GET /team?ac-discovery=1 HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
    b"GET /team?ac-discovery=1 HTTP/1.1\r\nHost : x\r\n\r\n",
    b"GET /team?ac-discovery=1 HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
    b"GET /team?ac-discovery=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: a\x00b\r\n\r\n",
    b"GET /team?ac-discovery=1 HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
    b"GET /team?ac-discovery=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    b"GET /team?ac-discovery=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET /team?ac-discovery=1 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
    b"GET /team?ac-discovery=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\r\n",
    b"GET /team?ac-discovery=1 HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\n\r\n",
    b"GET /team?ac-discovery=1 HTTP/1.1\r\nHost: x\r\nCookie: session=1\r\n\r\n",
    b"GET /team?ac-discovery=1 HTTP/1.1\r\nHost: x\r\nX-" + b"a" * HEAD_LIMIT,
    b"\x16\x03\x01\x02\x00",  # a TLS hello on the plain port
], ids=lambda head: head[:60].decode("latin-1"))
def test_parse_head_leaves_everything_else_to_gunicorn(head: bytes) -> None:
    assert parse_head(head) is None


# -- on the wire -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def registry(tmp_path_factory):  # type: ignore[no-untyped-def]
    env = {"PYRKT_REGISTRY_HEADER_TIMEOUT": str(HEADER_TIMEOUT), "PYRKT_REGISTRY_ACCESS_LOG": ""}
    with LiveRegistry(tmp_path_factory.mktemp("lane") / "registry", env=env) as live:
        yield live


def _connect(registry) -> socket.socket:  # type: ignore[no-untyped-def]
    return socket.create_connection(("127.0.0.1", registry.port), timeout=10)


def _read_answer(sock: socket.socket, buffered: bytearray, head_only: bool = False) -> bytes:
    """One HTTP answer (head + Content-Length body) from `sock`, leftovers kept in `buffered`."""
    while b"\r\n\r\n" not in buffered:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-answer: {bytes(buffered)!r}"
        buffered += chunk
    end = buffered.index(b"\r\n\r\n") + 4
    found = re.search(rb"\r\ncontent-length: *(\d+)", bytes(buffered[:end]), re.I)
    total = end + (int(found[1]) if found and not head_only else 0)
    while len(buffered) < total:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        buffered += chunk
    answer = bytes(buffered[:total])
    del buffered[:total]
    return answer


def _exchange(registry, *requests_: bytes, head_only: bool = False) -> list[bytes]:  # type: ignore[no-untyped-def]
    """Send each request on one kept-alive connection in turn; their answers."""
    answers = []
    with _connect(registry) as sock:
        buffered = bytearray()
        for request in requests_:
            sock.sendall(request)
            answers.append(_read_answer(sock, buffered, head_only))
    return answers


def _without_date(answer: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*", b"", answer)


def _lane_requests(registry) -> float:  # type: ignore[no-untyped-def]
    text = requests.get(registry.url("/metrics"), timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("pyrkt_http_requests_total{")
               and 'endpoint="discovery"' in line)


def test_lane_answers_byte_for_byte_as_gunicorn_and_the_wsgi_stack(registry) -> None:
    # An unknown header field sends the same request through gunicorn and every WSGI layer.
    through_gunicorn = DISCOVERY.replace(b"\r\n\r\n", b"\r\nX-Trace: 1\r\n\r\n")
    before = _lane_requests(registry)
    lane, full = _exchange(registry, DISCOVERY, through_gunicorn)
    assert lane.startswith(b"HTTP/1.1 200 OK\r\n") and b"Date: " in lane
    assert _without_date(lane) == _without_date(full)
    assert b"Content-Security-Policy: " in lane and b"X-Content-Type-Options: nosniff" in lane
    assert b'<meta name="ac-discovery" content="127.0.0.1/team/app ' in lane
    head = DISCOVERY.replace(b"GET ", b"HEAD ", 1)
    lane_head, full_head = _exchange(registry, head, head.replace(b"\r\n\r\n", b"\r\nX-T: 1\r\n\r\n"),
                                     head_only=True)
    assert _without_date(lane_head) == _without_date(full_head) == _without_date(lane).split(
        b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    # Counted like the WSGI path's answers (the four discovery answers above). The lane adds
    # its counts up once its event loop comes round, just after the answers of that round are
    # sent (metrics.Tally), so a scrape may come a moment before the last one is added: the
    # count must reach four, and not pass it.
    deadline = time.monotonic() + 5
    while _lane_requests(registry) < before + 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _lane_requests(registry) == before + 4


def test_connection_goes_to_gunicorn_with_the_bytes_read_and_stays_alive(registry) -> None:
    missing = b"GET /Bad_Name?ac-discovery=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    answers = _exchange(registry, DISCOVERY, DISCOVERY, HEALTH, DISCOVERY, missing, DISCOVERY)
    statuses = [answer.split(b"\r\n", 1)[0] for answer in answers]
    assert statuses == [b"HTTP/1.1 200 OK"] * 4 + [b"HTTP/1.1 404 NOT FOUND", b"HTTP/1.1 200 OK"]
    # Pipelined in one write, split across writes: every answer, in order.
    with _connect(registry) as sock:
        sock.sendall(DISCOVERY + DISCOVERY + HEALTH + DISCOVERY)
        buffered = bytearray()
        got = [_read_answer(sock, buffered) for _ in range(4)]
        assert [b"ac-discovery" in answer for answer in got] == [True, True, False, True]
        for piece in (DISCOVERY[:7], DISCOVERY[7:30], DISCOVERY[30:]):
            sock.sendall(piece)
            time.sleep(0.05)
        assert b"ac-discovery" in _read_answer(sock, buffered)


def test_connection_close_is_honoured(registry) -> None:
    with _connect(registry) as sock:
        sock.sendall(DISCOVERY.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n") + HEALTH)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.count(b"HTTP/1.1 ") == 1 and b"\r\nConnection: close\r\n" in answer


def test_header_deadline_holds_across_the_hand_over(registry) -> None:
    # The lane waits for a request line that may be discovery; once it is not, gunicorn gets
    # what is left of the deadline, not a fresh one.
    start = time.monotonic()
    with _connect(registry) as sock:
        sock.sendall(b"GET /_hea")
        time.sleep(HEADER_TIMEOUT * 0.75)
        sock.sendall(b"lth HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
        assert sock.recv(65536) == b""
    assert time.monotonic() - start < HEADER_TIMEOUT + 1


def test_discovery_head_never_finished_is_closed_at_the_deadline(registry) -> None:
    start = time.monotonic()
    with _connect(registry) as sock:
        sock.sendall(DISCOVERY[:-2])
        assert sock.recv(65536) == b""
    assert HEADER_TIMEOUT - 0.5 < time.monotonic() - start < HEADER_TIMEOUT + 2


def test_with_an_access_log_every_discovery_request_is_logged(tmp_path) -> None:
    # The lane would bypass gunicorn's access log, so a registry that keeps one does not use it.
    with LiveRegistry(tmp_path / "logged", workers=1) as logged:
        assert requests.get(logged.url("/team/app?ac-discovery=1"), timeout=10).ok
        time.sleep(0.2)
        assert '"GET /team/app?ac-discovery=1 HTTP/1.1" 200' in logged.log()
