"""The threads of the one-pass read: inflating, hashing and tar parsing overlap.

zlib/bz2/lzma and hashlib release the GIL while they work, tar parsing holds it. So the
decompressor runs a few chunks ahead in one helper thread (Prefetch), SHA-512 in another
(BackgroundHash), and the caller's thread parses: on two cores the pass costs about what the
slowest stage costs, as `gzip -dc | sha512sum` does with two processes. Queues are short,
so memory stays a few MiB whatever the image size."""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Iterator


class BackgroundHash:
    """A digest (SHA-512 by default) computed in a helper thread; `update` hands over a chunk
    and returns."""

    _DONE = None

    def __init__(self, algorithm: str = "sha512") -> None:
        self._hash = hashlib.new(algorithm)
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._run, name="aci-sha512", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not self._DONE:
            self._hash.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def close(self) -> str:
        self._queue.put(self._DONE)
        self._thread.join()
        return self._hash.hexdigest()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


class Prefetch:
    """Runs the decompressing iterator in a helper thread, a few chunks ahead, so inflating
    (GIL released) overlaps with tar parsing (GIL held) in the caller's thread."""

    def __init__(self, chunks: Iterator[bytes], depth: int = 4) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(chunks,), name="aci-inflate",
                                        daemon=True)
        self._thread.start()

    def _run(self, chunks: Iterator[bytes]) -> None:
        try:
            for chunk in chunks:
                if not self._put(chunk):
                    return
            self._put(_END)
        except BaseException as error:  # handed to the consumer, raised there
            self._put(_Failed(error))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]

    def close(self) -> None:
        """Stop the helper and wait for it: afterwards nobody else reads the source."""
        self._stop.set()
        self._thread.join()
