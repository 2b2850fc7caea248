"""The registry's gunicorn worker: gevent (one greenlet per connection), with deadlines.

Why gevent: a thread per connection (gthread) lets a handful of clients that send their
headers slowly, or upload and download at a crawl, occupy every thread; with greenlets a
waiting connection costs a few KiB and no thread, so thousands can wait while `/_health`,
discovery and downloads keep being answered. What gevent's defaults lack, this adds:

- a header deadline: the request line and headers (and the idle wait between keep-alive
  requests) must arrive within `header_timeout` seconds, else the connection is closed;
- a progress deadline: a socket read or write that makes no progress for `io_timeout`
  seconds (a stalled upload body, a download nobody reads) ends that connection;
- sendfile that cooperates: gevent's socket falls back to 8 KiB read()/send() loops, which
  would make downloads from local storage several times slower than nginx; here os.sendfile
  runs on the non-blocking socket and waits for writability through the event loop;
- the discovery lane (registry/server/lane.py): each connection's requests are first read
  here, and plain `?ac-discovery=1` ones answered in one send without gunicorn's parser, its
  environ or the WSGI layers (a few times cheaper); at the first request that is anything
  else the connection goes to gunicorn for good, with the bytes already read and what is
  left of that request's header deadline. Off over TLS, with an access log or statsd (they
  would miss those requests), with the PROXY protocol or a SCRIPT_NAME; gunicorn's
  pre_request/post_request hooks (the registry's config sets none) do not see them.

psycopg (3.1+) notices gevent's monkey-patching and then waits through the patched select,
so database queries yield too; boto3 (urllib3 over patched sockets) yields by itself.
"""

from __future__ import annotations

import errno
import os
import resource
import ssl
import time
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from gevent import Timeout, get_hub, getcurrent
from gevent import socket as gsocket
from gunicorn import SERVER
from gunicorn.workers.ggevent import GeventWorker

from registry.server.config import RegistryConfig

if TYPE_CHECKING:
    from registry.server.lane import DiscoveryLane


def raise_open_files_limit() -> int:
    """Lift the soft limit of open files to the hard limit (each held connection is one file
    descriptor; 1024, a common soft default, would cap the connections a worker can hold)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            return soft
    return soft


def cooperative_sendfile(sock: Any, file: Any, offset: int = 0, count: int | None = None) -> int:
    """socket.sendfile for a gevent socket: zero-copy os.sendfile on the socket's non-blocking
    descriptor, yielding to other greenlets whenever the socket buffer is full."""
    out_fd, in_fd = sock.fileno(), file.fileno()
    if count is None:
        count = os.fstat(in_fd).st_size - offset
    timeout = sock.gettimeout()
    total = 0
    while total < count:
        try:
            sent = os.sendfile(out_fd, in_fd, offset + total, min(count - total, 1 << 30))
        except BlockingIOError:
            gsocket.wait_write(out_fd, timeout=timeout,
                               timeout_exc=gsocket.timeout("download stalled: client not reading"))
            continue
        except OSError as error:
            if error.errno == errno.EINTR:
                continue
            raise
        if sent == 0:
            break  # the file is shorter than promised (truncated under us)
        total += sent
    if total and hasattr(file, "seek"):
        file.seek(offset + total)
    return total


class BufferedSocket:
    """A client socket with the bytes the lane already read put back in front of it: gunicorn's
    parser reads them first (it reads with recv alone), everything else is the socket's."""

    def __init__(self, sock: Any, pending: bytes) -> None:
        self._sock = sock
        self._pending = pending

    def recv(self, size: int, *flags: int) -> bytes:
        if self._pending:
            data, self._pending = self._pending[:size], self._pending[size:]
            return data
        return self._sock.recv(size, *flags)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Date:
    """The Date field, formatted once a second (as gunicorn's, RFC 9110's IMF-fixdate)."""

    second = -1
    field = b""

    @classmethod
    def now(cls) -> bytes:
        second = int(time.time())
        if second != cls.second:
            cls.field = f"Date: {formatdate(second, usegmt=True)}\r\n".encode()
            cls.second = second
        return cls.field


_STATUS = f"HTTP/1.1 200 OK\r\nServer: {SERVER}\r\n".encode()
_KEEP_ALIVE = b"Connection: keep-alive\r\n"
_CLOSE = b"Connection: close\r\n"


class RegistryGeventWorker(GeventWorker):
    """gunicorn's gevent worker with the deadlines, the sendfile and the lane described above."""

    alive: bool  # gunicorn's: False once the worker is stopping

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = RegistryConfig.load().values
        self.header_timeout: float = settings["header_timeout"]
        self.io_timeout: float = settings["io_timeout"]
        self.lane: DiscoveryLane | None = None
        # A head handed to gunicorn mid-way keeps its deadline: greenlet -> monotonic time.
        self._deadlines: dict[Any, float] = {}

    def patch(self) -> None:
        super().patch()
        raise_open_files_limit()
        from gevent import _socket3

        # Replaces the 8 KiB read/send loop gevent's socket.sendfile uses.
        _socket3.socket.sendfile = cooperative_sendfile  # type: ignore[method-assign]

    def run(self) -> None:
        # Imported here, in the worker after the app loaded: the master imports this module
        # to find the class, and must not load the app's modules (nor prometheus_client).
        from registry.server.lane import EXTENSION

        cfg = self.cfg
        lane = getattr(self.wsgi, "extensions", {}).get(EXTENSION)
        if lane is not None and not (cfg.is_ssl or cfg.accesslog or cfg.statsd_host
                                     or cfg.proxy_protocol != "off" or os.environ.get("SCRIPT_NAME")):
            # The lane's metrics are added up once per loop round (metrics.Tally).
            lane.schedule = get_hub().loop.run_callback
            self.lane = lane
        super().run()

    def timeout_ctx(self) -> Timeout:
        # gunicorn wraps reading each request line + headers in this context (and the idle
        # wait for the next keep-alive request): past it the connection is simply closed.
        deadline = self._deadlines.pop(getcurrent(), None)
        if deadline is None:
            return Timeout(self.header_timeout, False)
        return Timeout(max(deadline - time.monotonic(), 0.001), False)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        # Not setblocking(1) as gevent's worker does: a read or write that waits longer than
        # io_timeout raises socket.timeout, which ends that connection and nothing else.
        client.settimeout(self.io_timeout)
        if self.lane is not None and not isinstance(client, ssl.SSLSocket):
            try:
                pending = self.serve_lane(client, self.lane)
            except OSError:
                pending = None  # reset, broken pipe, a stalled write: as gunicorn, just close
            except Exception:
                self.log.exception("Error in the discovery lane")
                pending = None
            if pending is None:
                client.close()
                return
            client = BufferedSocket(client, pending)
        try:
            super(GeventWorker, self).handle(listener, client, addr)
        finally:
            self._deadlines.pop(getcurrent(), None)

    def serve_lane(self, client: Any, lane: DiscoveryLane) -> bytes | None:
        """Answer the connection's discovery requests; return the bytes read of the first other
        request (gunicorn takes the connection from there), or None: close it."""
        # Imported in the worker only (see run): the master must not load the app's modules.
        from registry.server.lane import NEED_MORE, LaneRequest, parse_head

        buffer = b""
        while True:
            # The header deadline as gunicorn's (close without an answer), kept as the socket's
            # timeout for each read: cheaper than a gevent Timeout per request.
            deadline = time.monotonic() + self.header_timeout
            while (request := parse_head(buffer)) == NEED_MORE:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                client.settimeout(remaining)
                try:
                    chunk = client.recv(8192)
                except TimeoutError:
                    return None
                if not chunk:
                    return None
                buffer += chunk
            client.settimeout(self.io_timeout)
            started = time.perf_counter()
            answer = lane.answer(request) if isinstance(request, LaneRequest) else None
            if answer is None or not isinstance(request, LaneRequest):
                self._deadlines[getcurrent()] = deadline
                return buffer
            # gunicorn's bookkeeping: max_requests restarts the worker, a stopping worker
            # closes kept-alive connections.
            self.nr += 1
            if self.nr >= self.max_requests and self.alive:
                self.log.info("Autorestarting worker after current request.")
                self.alive = False
            close = request.close or not self.alive
            data, body_length = answer
            payload = b"".join((_STATUS, _Date.now(), _CLOSE if close else _KEEP_ALIVE, data))
            # One send takes it all unless the socket buffer is full (sendall asks the socket
            # for its buffer size each time, a system call the common case need not make).
            sent = client.send(payload)
            if sent < len(payload):
                client.sendall(payload[sent:])
            lane.count(request, time.perf_counter() - started, body_length)
            if close:
                return None
            buffer = buffer[request.length:]
