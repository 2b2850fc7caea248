"""The fetch pipeline's parts: the chunk reader read_aci consumes, the queue that feeds the
signature check, and the write-behind that syncs a download while it is written."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest

from registry.aci.pipeline import BackgroundFeed, Prefetch
from registry.client.download import ChunkReader
from registry.client.streams import WriteBehind


def _chunks(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.choice([0, 1, 7, 4096, 65536, 1 << 20])) for _ in range(40)]


@pytest.mark.parametrize("seed", range(6))
def test_chunk_reader_returns_the_stream_whatever_the_read_sizes(seed: int) -> None:
    chunks = _chunks(seed)
    expected = b"".join(chunks)
    rng = random.Random(seed + 100)
    reader = ChunkReader(iter(chunks))
    got = bytearray()
    while True:
        size = rng.choice([1, 5, 4096, 256 << 10, 1 << 20, 3 << 20])
        data = reader.read(size)
        assert len(data) <= size
        if not data:
            break
        got += data
    assert bytes(got) == expected
    assert reader.read(10) == b""


def test_chunk_reader_hands_whole_chunks_over_without_copying() -> None:
    chunk = os.urandom(1 << 20)
    reader = ChunkReader(iter([chunk]))
    assert reader.read(2 << 20) is chunk


def test_chunk_reader_read_all_and_readinto() -> None:
    reader = ChunkReader(iter([b"abc", b"defg", b"h"]))
    buffer = bytearray(2)
    assert reader.readinto(buffer) == 2 and buffer == b"ab"
    assert reader.read() == b"cdefgh"


def test_chunk_reader_closes_a_prefetching_source() -> None:
    produced = threading.Event()

    def endless():
        while True:
            produced.set()
            yield b"x" * 1024

    prefetch = Prefetch(endless(), depth=2)
    reader = ChunkReader(prefetch)
    assert reader.read(10) == b"x" * 10
    reader.close()  # stops the producer thread (it would run forever otherwise)
    assert not prefetch._thread.is_alive()


def test_background_feed_delivers_every_chunk_in_order() -> None:
    seen: list[bytes] = []

    def slow_sink(chunk: bytes) -> None:
        time.sleep(0.001)
        seen.append(chunk)

    feed = BackgroundFeed(slow_sink, depth=2)
    chunks = [bytes([i]) * 100 for i in range(50)]
    for chunk in chunks:
        feed.put(chunk)
    feed.close()
    assert seen == chunks
    feed.close()  # a second close is a no-op


def test_a_failing_sink_never_blocks_the_producer_and_close_raises_its_error() -> None:
    calls = []

    def broken(chunk: bytes) -> None:
        calls.append(chunk)
        raise OSError("the verifier went away")

    feed = BackgroundFeed(broken, depth=1)
    started = time.monotonic()
    for _ in range(200):  # far more than the queue holds
        feed.put(b"data")
    assert time.monotonic() - started < 10
    with pytest.raises(OSError, match="went away"):
        feed.close()
    assert calls == [b"data"]  # fed once, then no more
    assert not feed._thread.is_alive()


def _write_behind_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "write-behind"]


def test_write_behind_starts_only_past_its_threshold_and_stops_on_close(tmp_path: Path) -> None:
    before = _write_behind_threads()
    with open(tmp_path / "small", "ab") as sink:
        behind = WriteBehind(sink.fileno(), every=1 << 20)
        sink.write(b"x" * 1000)
        behind.wrote(1000)
        assert _write_behind_threads() == before  # a small file costs no thread
        behind.close()
    with open(tmp_path / "big", "ab") as sink:
        behind = WriteBehind(sink.fileno(), every=1 << 20)
        for _ in range(5):
            sink.write(b"y" * (1 << 20))
            behind.wrote(1 << 20)
        assert len(_write_behind_threads()) == len(before) + 1
        behind.close()
        assert _write_behind_threads() == before
        os.fstat(sink.fileno())  # the file is still open and usable after close()
    assert (tmp_path / "big").read_bytes() == b"y" * (5 << 20)


def test_write_behind_survives_a_file_it_cannot_sync(tmp_path: Path) -> None:
    """fdatasync failing (EINVAL on a pipe) ends the helper quietly: the final fsync reports."""
    read_end, write_end = os.pipe()
    try:
        behind = WriteBehind(write_end, every=1)
        behind.wrote(1)
        behind.close()
    finally:
        os.close(read_end)
        os.close(write_end)
