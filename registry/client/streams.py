"""Small streaming helpers: read a stream once while copying it, hashing it or counting it."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, BinaryIO, Protocol

from registry.aci.pipeline import BackgroundFeed

if TYPE_CHECKING:
    from registry.signing.streaming import StreamingVerifier

CHUNK = 1024 * 1024


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class TeeReader:
    """A read-only file object over `source` that also writes every byte read into `sinks`.

    `registry.aci.read_aci` consumes it (decompressing, hashing, validating) while the same bytes
    land in a temporary file: one pass over the network stream, nothing held in memory.
    """

    def __init__(self, source: BinaryIO | Iterable[bytes], *sinks: Sink,
                 on_bytes: Callable[[int], None] | None = None) -> None:
        self._read = source.read if hasattr(source, "read") else None  # type: ignore[union-attr]
        self._chunks = None if self._read else iter(source)  # type: ignore[arg-type]
        self._pending = b""
        self._sinks = sinks
        self._on_bytes = on_bytes
        self.count = 0

    def readable(self) -> bool:
        return True

    def _next(self, size: int) -> bytes:
        if self._read is not None:
            return self._read(size if size >= 0 else CHUNK)
        if not self._pending:
            self._pending = next(self._chunks, b"")  # type: ignore[arg-type]
        data = self._pending if size < 0 else self._pending[:size]
        self._pending = self._pending[len(data):]
        return data

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while chunk := self._next(CHUNK):
                parts.append(self._emit(chunk))
            return b"".join(parts)
        data = self._next(size)
        while self._read is None and not data and self._pending == b"":
            # an iterator may yield an empty chunk before its end: look once more
            more = next(self._chunks, None)  # type: ignore[arg-type]
            if more is None:
                break
            self._pending = more
            data = self._next(size)
        return self._emit(data)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _emit(self, data: bytes) -> bytes:
        if data:
            for sink in self._sinks:
                sink.write(data)
            self.count += len(data)
            if self._on_bytes is not None:
                self._on_bytes(len(data))
        return data

    def drain(self) -> None:
        """Read whatever is left, so every byte reaches the sinks."""
        while self.read(CHUNK):
            pass


class WriteBehind:
    """Pushes a file being written to disk as it grows: every `every` bytes a helper thread
    fdatasyncs it, so the fsync that must precede the import (an image in the store survives
    a crash) waits for the last stretch only, not for the whole download to be written back.
    Errors are left to that final fsync, which reports them."""

    def __init__(self, fd: int, every: int = 32 << 20) -> None:
        self._fd = fd
        self._every = every
        self._pending = 0
        self._wake = threading.Event()
        self._done = False
        self._thread: threading.Thread | None = None

    def wrote(self, count: int) -> None:
        self._pending += count
        if self._pending >= self._every:
            self._pending = 0
            if self._thread is None:  # only downloads that are large enough pay for a thread
                self._thread = threading.Thread(target=self._run, name="write-behind",
                                                daemon=True)
                self._thread.start()
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._done:
                return
            try:
                os.fdatasync(self._fd)
            except OSError:
                return

    def close(self) -> None:
        """Stop the helper (before the file is closed)."""
        self._done = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()


def verifier_feed(verifier: StreamingVerifier | None) -> BackgroundFeed | None:
    """The queue that feeds a signature check's process from the same pass as the read, at most
    four chunks behind (None: no signature to check)."""
    return BackgroundFeed(verifier.update, depth=4, name="verify-feed") if verifier else None
