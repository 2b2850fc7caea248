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
  runs on the non-blocking socket and waits for writability through the event loop.

psycopg (3.1+) notices gevent's monkey-patching and then waits through the patched select,
so database queries yield too; boto3 (urllib3 over patched sockets) yields by itself.
"""

from __future__ import annotations

import errno
import os
import resource
from typing import Any

from gevent import Timeout
from gevent import socket as gsocket
from gunicorn.workers.ggevent import GeventWorker

from registry.server.config import RegistryConfig


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


class RegistryGeventWorker(GeventWorker):
    """gunicorn's gevent worker with the deadlines and the sendfile described above."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = RegistryConfig.load().values
        self.header_timeout: float = settings["header_timeout"]
        self.io_timeout: float = settings["io_timeout"]

    def patch(self) -> None:
        super().patch()
        raise_open_files_limit()
        from gevent import _socket3

        # Replaces the 8 KiB read/send loop gevent's socket.sendfile uses.
        _socket3.socket.sendfile = cooperative_sendfile  # type: ignore[method-assign]

    def timeout_ctx(self) -> Timeout:
        # gunicorn wraps reading each request line + headers in this context (and the idle
        # wait for the next keep-alive request): past it the connection is simply closed.
        return Timeout(self.header_timeout, False)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        # Not setblocking(1) as gevent's worker does: a read or write that waits longer than
        # io_timeout raises socket.timeout, which ends that connection and nothing else.
        client.settimeout(self.io_timeout)
        super(GeventWorker, self).handle(listener, client, addr)
