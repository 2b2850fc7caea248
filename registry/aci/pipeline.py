"""The threads of the one-pass read: inflating, hashing and tar parsing overlap.

zlib/bz2/lzma and hashlib release the GIL while they work, tar parsing holds it. So the
decompressor runs a few chunks ahead in one helper thread (Prefetch), SHA-512 in another
(BackgroundHash: a BackgroundFeed into the hash), and the caller's thread parses: on two cores
the pass costs about what the slowest stage costs, as `gzip -dc | sha512sum` does with two processes. Queues are short,
so memory stays a few MiB whatever the image size."""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterator


class BackgroundFeed:
    """Hands every chunk `put` to `sink` in a helper thread, at most `depth` chunks behind.

    For a consumer with its own pace, such as the signature check's process on a pipe: the
    producer (the download) then stalls only when that consumer is a whole queue behind, not
    each time the pipe is full, and both keep their cores busy. A failing sink stops being
    fed (the rest is dropped, so the producer never blocks on it); `close` raises its error.
    """

    _DONE = None

    def __init__(self, sink: Callable[[bytes], object], depth: int = 8,
                 name: str = "feed") -> None:
        self._sink = sink
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not self._DONE:
            if self._error is None:
                try:
                    self._sink(chunk)
                except BaseException as error:  # kept for close(), raised in the caller
                    self._error = error

    def put(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    write = put  # a Sink, for TeeReader

    def close(self) -> None:
        """Wait until every chunk put so far has reached the sink (or the sink failed)."""
        if self._thread.is_alive():
            self._queue.put(self._DONE)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def close_quietly(self) -> None:
        """close() on the way out, whatever happened: after a success it is a no-op; after a
        refusal the sink is gone (its writes fail) and the error that got us here is the one
        to report, not this one."""
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - see the docstring
            pass


class BackgroundHash:
    """A digest (SHA-512 by default) computed in a helper thread; `update` hands over a chunk
    and returns."""

    def __init__(self, algorithm: str = "sha512") -> None:
        self._hash = hashlib.new(algorithm)
        self._feed = BackgroundFeed(self._hash.update, depth=8, name="aci-sha512")

    def update(self, chunk: bytes) -> None:
        self._feed.put(chunk)

    def close(self) -> str:
        self._feed.close()
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
