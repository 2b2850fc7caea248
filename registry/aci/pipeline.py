"""The threads of the one-pass read: inflating, hashing and tar parsing overlap.

zlib/bz2/lzma and hashlib release the GIL while they work, tar parsing holds it. So the
decompressor runs a few chunks ahead in one helper thread (Prefetch), SHA-512 in another
(BackgroundHash: a BackgroundFeed into the hash), and the caller's thread parses: on two cores
the pass costs about what the slowest stage costs, as `gzip -dc | sha512sum` does with two
processes. Queues are short, so memory stays a few MiB whatever the image size.

Threads, locks and queues are made of `_thread`'s primitives (loaded in every interpreter):
`threading` and `queue` bring functools, collections and heapq, ~4-5 ms of a process computing
an image ID (~0.2 s at 128 MiB, where the goal is 0.4x `gzip -dc | sha512sum`). Each queue has
one producer and one consumer, which makes it a ring of slots with a lock pair each. The
primitives are looked up when used, so where gevent has patched `_thread` (the registry's
workers) these are greenlets and gevent's locks, as threading's would be.
"""

from __future__ import annotations

import _thread

try:  # OpenSSL's digests, which hashlib.new hands these names to (hashlib loads blake2 besides)
    from _hashlib import new as _new_hash
except ImportError:  # a Python built without OpenSSL
    from hashlib import new as _new_hash  # type: ignore[assignment]  # (its 2nd parameter's name)

TYPE_CHECKING = False  # (typing's costs ~10 ms; type checkers take this one as theirs)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any


class _Helper:
    """A helper thread running `target(*args)`, started at once: `is_alive` and `join` as
    threading.Thread's, from a lock the thread holds until it ends."""

    def __init__(self, target: Callable[..., object], args: tuple[object, ...], name: str
                 ) -> None:
        self.name = name
        self._running = _thread.allocate_lock()
        self._running.acquire()
        _thread.start_new_thread(self._main, (target, args))

    def _main(self, target: Callable[..., object], args: tuple[object, ...]) -> None:
        try:
            target(*args)
        finally:
            self._running.release()

    def is_alive(self) -> bool:
        return self._running.locked()

    def join(self) -> None:
        with self._running:
            pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {'running' if self.is_alive() else 'ended'}>"


class _Channel:
    """A FIFO of at most `depth` items between ONE producer thread and ONE consumer thread.

    Slot i holds an item between `filled[i]` being released (by `put`) and `vacant[i]` being
    released (by `get`); each side walks the ring in order, so it only ever waits for its own
    next slot, and the two sides never touch the same index at once."""

    def __init__(self, depth: int) -> None:
        self._items: list[object] = [None] * depth
        self._vacant = [_thread.allocate_lock() for _ in range(depth)]
        self._filled = [_thread.allocate_lock() for _ in range(depth)]
        for lock in self._filled:
            lock.acquire()  # every slot starts empty
        self._put_at = 0
        self._get_at = 0

    def put(self, item: object, timeout: float = -1) -> bool:
        """Wait for the next slot (at most `timeout` seconds; -1: as long as it takes) and
        fill it; False if it stayed full."""
        index = self._put_at
        if not self._vacant[index].acquire(True, timeout):
            return False
        self._items[index] = item
        self._put_at = (index + 1) % len(self._items)
        self._filled[index].release()
        return True

    def get(self) -> Any:
        """The oldest item, waiting for one."""
        index = self._get_at
        self._filled[index].acquire()
        item, self._items[index] = self._items[index], None
        self._get_at = (index + 1) % len(self._items)
        self._vacant[index].release()
        return item


_DONE = object()


class BackgroundFeed:
    """Hands every chunk `put` to `sink` in a helper thread, at most `depth` chunks behind.

    For a consumer with its own pace, such as the signature check's process on a pipe: the
    producer (the download) then stalls only when that consumer is a whole queue behind, not
    each time the pipe is full, and both keep their cores busy. A failing sink stops being
    fed (the rest is dropped, so the producer never blocks on it); `close` raises its error.
    """

    def __init__(self, sink: Callable[[bytes], object], depth: int = 8,
                 name: str = "feed") -> None:
        self._sink = sink
        self._queue = _Channel(depth)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = _Helper(self._run, (), name)

    def _run(self) -> None:
        get = self._queue.get
        while (chunk := get()) is not _DONE:
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
        if not self._closed:
            self._closed = True
            self._queue.put(_DONE)
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
        self._hash = _new_hash(algorithm)
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
_POLL = 0.05  # seconds a blocked producer waits before it looks whether it was stopped


class Prefetch:
    """Runs the decompressing iterator in a helper thread, a few chunks ahead, so inflating
    (GIL released) overlaps with tar parsing (GIL held) in the caller's thread."""

    def __init__(self, chunks: Iterator[bytes], depth: int = 4) -> None:
        self._queue = _Channel(depth)
        self._stopped = False
        self._thread = _Helper(self._run, (chunks,), "aci-inflate")

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
        while not self._stopped:
            if self._queue.put(item, _POLL):
                return True
        return False

    def __iter__(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def close(self) -> None:
        """Stop the helper and wait for it: afterwards nobody else reads the source."""
        self._stopped = True
        self._thread.join()
