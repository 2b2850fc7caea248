"""Hostile slow clients for tests and bench/bench_slow_clients.py: many connections to a
server on loopback that trickle their headers, trickle a request body, or sit idle.

    with SlowClients("127.0.0.1", port, trickle_headers=300, trickle_bodies=300, idle=400,
                     body_path="/_api/v1/repositories/127.0.0.1/team/app/-/images") as load:
        load.wait_connected(1000, timeout=30)
        ... measure the server ...
        load.held            # connections open right now
        load.closed_by_server  # how often the server hung up (then the client reconnects)

Every connection runs in one asyncio loop in a background thread (one thread, thousands of
sockets). A client the server hangs up on opens a new connection: the attack never eases.
"""

from __future__ import annotations

import asyncio
import resource
import threading
import time
from dataclasses import dataclass, field


def raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class SlowClients:
    host: str
    port: int
    trickle_headers: int = 0
    trickle_bodies: int = 0
    idle: int = 0
    body_path: str = "/_api/v1/upload"
    interval: float = 1.0  # seconds between two trickled bytes
    held: int = 0
    connected_once: int = 0
    closed_by_server: int = 0
    failed_connects: int = 0
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _stop: asyncio.Event | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def total(self) -> int:
        return self.trickle_headers + self.trickle_bodies + self.idle

    def __enter__(self) -> SlowClients:
        raise_open_files_limit()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True,
                                        name="slow-clients")
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)

    def wait_connected(self, count: int, timeout: float = 60.0) -> int:
        """Wait until `count` connections are open at once; returns how many are."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.held < count:
            time.sleep(0.1)
        return self.held

    # -- the event loop thread -------------------------------------------------------------
    def _run(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main(ready))
        finally:
            self._loop.close()

    async def _main(self, ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        ready.set()
        kinds = (["headers"] * self.trickle_headers + ["body"] * self.trickle_bodies
                 + ["idle"] * self.idle)
        tasks = []
        for number, kind in enumerate(kinds):
            tasks.append(asyncio.create_task(self._client(kind, number)))
            if number % 50 == 49:
                await asyncio.sleep(0.05)  # do not overflow the listen backlog at once
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _count(self, name: str, delta: int) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + delta)

    async def _client(self, kind: str, number: int) -> None:
        while not self._stop.is_set():  # type: ignore[union-attr]
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                self._count("failed_connects", 1)
                await asyncio.sleep(0.5)
                continue
            self._count("held", 1)
            self._count("connected_once", 1)
            try:
                await self._behave(kind, number, reader, writer)
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                self._count("held", -1)
                writer.close()
            if not self._stop.is_set():  # type: ignore[union-attr]
                self._count("closed_by_server", 1)

    async def _behave(self, kind: str, number: int, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if kind == "headers":
            # A request whose header block never ends: one more byte every `interval`.
            writer.write(f"GET /_health HTTP/1.1\r\nHost: {self.host}\r\n".encode())
            prefix = b"X-Slow-" + str(number).encode() + b": "
            limit = 10_000
        elif kind == "body":
            writer.write(f"POST {self.body_path} HTTP/1.1\r\nHost: {self.host}\r\n"
                         "Content-Type: application/octet-stream\r\n"
                         "Content-Length: 104857600\r\n\r\n".encode())
            prefix, limit = b"", 104857600
        else:
            prefix, limit = b"", 0
        writer.write(prefix)
        await writer.drain()
        sent = 0
        while True:
            if sent < limit:
                writer.write(b"a")
                sent += 1
                await writer.drain()
            # An answer or EOF ends this connection (the server refused or hung up).
            try:
                data = await asyncio.wait_for(reader.read(65536), timeout=self.interval)
            except TimeoutError:
                continue
            if not data:
                return
