"""The discovery lane: plain `GET|HEAD /NAME?ac-discovery=1` answered by the gevent worker itself.

Discovery is the registry's hottest path (every fetch walks it, often several times). Through
gunicorn's HTTP parser, its environ, the WSGI layers and its response writer one such request
costs about 200 µs of CPU, while its answer is a pure function of the Host header, the path and
the settings: the same two meta tags for every name under a hosted domain, whether a repository
exists, is private or not (blueprints/discovery.py says why that leaks nothing). So the worker
(registry/server/worker.py) reads requests off the socket itself, and when one is a plain
discovery request it writes the answer rendered once, in one send; everything else goes to
gunicorn untouched, with the bytes already read.

This module holds the two halves that do not touch sockets:

- `parse_head(buffer)`: accepts only a strict subset of HTTP/1.1 (see `_LINE`, `_IGNORED`):
  method GET or HEAD, an origin-form path of AC-name characters, the query `ac-discovery=1`
  and nothing else, one Host header of host[:port] characters, `Connection` keep-alive or
  close, and only header fields that cannot change the answer. Anything else, including
  whatever gunicorn would refuse or treat specially (bodies, Expect, Upgrade, forwarded
  headers, percent-encoding, folding, control characters), is handed to gunicorn, which then
  gives exactly the answer or error it gives today.
- `DiscoveryLane`: the answer's header fields and body, built from the same pieces as the WSGI
  path (`DiscoveryFastPath.body_for`, `DISCOVERY_HEADERS`, `add_security_headers`) and counted
  by the same `metrics.count_request`. A name the fast path does not answer (not hosted: a
  mirror or a 404) goes to gunicorn too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from registry.server.blueprints.discovery import DISCOVERY_HEADERS, DiscoveryFastPath
from registry.server.headers import add_security_headers
from registry.server.operations.metrics import Tally

EXTENSION = "pyrkt.discovery_lane"
# A discovery head is a few hundred bytes; one this long goes to gunicorn, which has the limits.
HEAD_LIMIT: Final = 8192
NEED_MORE: Final = "need-more"

_LINE = re.compile(rb"(GET|HEAD) (/[a-z0-9._~/-]*)\?ac-discovery=1 HTTP/1\.1")
_HOST = re.compile(rb"[A-Za-z0-9.-]+(?::[0-9]{1,5})?")
_VALUE = re.compile(rb"[\t\x20-\x7e]*")
# Request fields that cannot change a discovery answer (which never reads them). Any other
# field hands the request to gunicorn: forwarded headers (the scheme, hence HSTS), bodies,
# Expect, Upgrade, cookies, conditionals... each answered there as before.
_IGNORED = frozenset((b"user-agent", b"accept", b"accept-encoding", b"accept-language",
                      b"authorization", b"cache-control", b"pragma"))


@dataclass(frozen=True, slots=True)
class LaneRequest:
    method: str
    path: str
    host: str  # the Host header's value
    close: bool  # the client asked to close the connection after the answer
    length: int  # bytes of the buffer this head takes


def parse_head(buffer: bytes) -> LaneRequest | str | None:
    """The discovery request at the start of `buffer`, NEED_MORE while it may still become
    one, or None: hand the connection to gunicorn."""
    if not (buffer.startswith((b"GET /", b"HEAD /")) or b"GET /".startswith(buffer)
            or b"HEAD /".startswith(buffer)):
        return None
    line_end = buffer.find(b"\r\n")
    if line_end < 0:
        return NEED_MORE if len(buffer) < HEAD_LIMIT else None
    line = _LINE.fullmatch(buffer, 0, line_end)
    if line is None:
        return None
    end = buffer.find(b"\r\n\r\n", line_end)
    if end < 0:
        return NEED_MORE if len(buffer) < HEAD_LIMIT else None
    if end == line_end:
        return None  # no Host header
    host: bytes | None = None
    close = False
    for field in buffer[line_end + 2:end].split(b"\r\n"):
        name, colon, value = field.partition(b":")
        if not colon:
            return None
        value = value.strip(b" \t")
        if not _VALUE.fullmatch(value):
            return None
        name = name.lower()
        if name == b"host":
            if host is not None:
                return None
            host = value
        elif name == b"connection":
            token = value.lower()
            if token == b"close":
                close = True
            elif token != b"keep-alive":
                return None
        elif name not in _IGNORED:
            return None
    if host is None or not _HOST.fullmatch(host):
        return None
    return LaneRequest(line[1].decode(), line[2].decode(), host.decode(), close, end + 4)


class DiscoveryLane:
    """What the worker sends after its own status line, Server, Date and Connection fields,
    and the counting of it."""

    def __init__(self, fast_path: DiscoveryFastPath, *, metrics: bool) -> None:
        self.fast_path = fast_path
        self.tally = Tally("discovery") if metrics else None
        # How the tally's flush is run: the gevent worker sets its event loop's run_callback
        # (once per loop round); anywhere else it runs at once.
        self.schedule: Callable[[Callable[[], None]], object] = _now
        self._flush_due = False
        # Bounded: the key is what a client sends. Rendered once per Host and path.
        self.rendered = lru_cache(maxsize=4096)(self._render)

    def _render(self, host: str, path: str) -> tuple[bytes, bytes] | None:
        body = self.fast_path.body_for(host, path)
        if body is None:
            return None
        headers = add_security_headers([*DISCOVERY_HEADERS, ("Content-Length", str(len(body)))])
        fields = "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
        return fields.encode("latin-1"), body

    def answer(self, request: LaneRequest) -> tuple[bytes, int] | None:
        """(header fields, the blank line and, unless HEAD, the body; the body's length), or
        None: gunicorn answers."""
        found = self.rendered(request.host, request.path)
        if found is None:
            return None
        fields, body = found
        return (fields if request.method == "HEAD" else fields + body), len(body)

    def count(self, request: LaneRequest, seconds: float, body_length: int) -> None:
        if self.tally is None:
            return
        self.tally.add(request.method, "200", seconds, body_length)
        if not self._flush_due:
            self._flush_due = True
            self.schedule(self.flush)

    def flush(self) -> None:
        self._flush_due = False
        if self.tally is not None:
            self.tally.flush()


def _now(callback: Callable[[], None]) -> None:
    callback()
