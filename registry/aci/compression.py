"""Compression of ACI files, the one table for every reader and writer: detection by magic
bytes, streaming decompression in bounded chunks (a bomb can never make one step produce more
than `chunk_size` bytes) and the compressors the writer uses.

gzip (deflate) both ways goes through one library, chosen here and nowhere else: ISA-L's
(`isal`, a dependency of the host side) when it imports, else the standard zlib. ISA-L's
deflate at its level 3 is about ten times zlib's level 6 on image content and its inflate about
twice zlib's, for files about 9% larger than `gzip -6` (measured in bench/bench_docker2aci.py).
Both write ordinary gzip streams that every reader accepts; the compressed bytes differ between
the two, the tar inside (and so the image ID) does not. Writing, the deflate is spread over
threads (ParallelGzip), since it costs more than everything else an ACI writer does."""

from __future__ import annotations

import os
import sys

from registry.aci.errors import ArchiveError

# Reading a gzip ACI (an image ID takes ~0.2 s at 128 MiB, a whole process of its own) loads
# this module and the deflate library only (zlib only when it is that library): bz2 and lzma
# are imported where a stream of theirs is (de)compressed, collections and concurrent.futures
# (logging, traceback: 7 ms) where blocks are deflated, and typing (re, enum, collections:
# ~10 ms) never at run time, so the protocols below exist for type checkers only (annotations
# are strings, never evaluated).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import collections
    from collections.abc import Callable, Generator
    from concurrent.futures import Future, ThreadPoolExecutor
    from typing import Any, Protocol

GZIP, BZIP2, XZ, NONE = "gzip", "bzip2", "xz", "none"
COMPRESSIONS = (GZIP, BZIP2, XZ, NONE)
_MAGIC = ((b"\x1f\x8b", GZIP), (b"BZh", BZIP2), (b"\xfd7zXZ\x00", XZ))
MAGIC_LENGTH = 6

READ_SIZE = 256 << 10    # compressed bytes read per step (the bomb guard's granularity)
CHUNK_SIZE = 1 << 20     # at most this many decompressed bytes per step


if TYPE_CHECKING:
    class Compressor(Protocol):
        def compress(self, data: Any) -> bytes | memoryview: ...

        def flush(self) -> bytes: ...

        def close(self) -> None: ...


    class _StreamEngine(Protocol):
        """bz2's and lzma's compressor objects."""

        def compress(self, data: Any, /) -> bytes: ...

        def flush(self) -> bytes: ...


    class _DeflateEngine(Protocol):
        """zlib's compressobj, as zlib and ISA-L both make it."""

        def compress(self, data: Any, /) -> bytes: ...

        def flush(self, mode: int = ..., /) -> bytes: ...


    class _Inflater(Protocol):
        """zlib's decompressobj, as zlib and ISA-L both make it."""

        @property
        def eof(self) -> bool: ...

        @property
        def unused_data(self) -> bytes: ...

        @property
        def unconsumed_tail(self) -> bytes: ...

        def decompress(self, data: bytes, max_length: int = 0, /) -> bytes: ...


class _Deflate:
    """The deflate library in use and its settings (a plain class: NamedTuple is typing's)."""

    __slots__ = ("name", "level", "mem_level", "compressobj", "decompressobj", "crc32", "errors",
                 "deflated", "default_strategy", "sync_flush")

    def __init__(self, name: str, level: int, mem_level: int, library: Any,
                 errors: tuple[type[Exception], ...]) -> None:
        self.name, self.level, self.mem_level, self.errors = name, level, mem_level, errors
        self.compressobj: Callable[..., _DeflateEngine] = library.compressobj
        self.decompressobj: Callable[[int], _Inflater] = library.decompressobj
        self.crc32: Callable[[Any, int], int] = library.crc32
        # zlib's constants, which ISA-L's zlib interface repeats.
        self.deflated: int = library.DEFLATED
        self.default_strategy: int = library.Z_DEFAULT_STRATEGY
        self.sync_flush: int = library.Z_SYNC_FLUSH


def _deflate_library() -> _Deflate:
    """The deflate library in use: ISA-L's when it imports, else zlib."""
    try:
        from isal import isal_zlib
    except ImportError:
        import zlib

        # Level 6: gzip's and Go's default.
        return _Deflate("zlib", 6, zlib.DEF_MEM_LEVEL, zlib, (zlib.error,))
    # Level 3 is ISA-L's best; memLevel 3 (smaller level buffers, so its Huffman tables adapt
    # more often) gave 1-2% smaller files than its default 8 at the same speed, on binaries
    # and text alike.
    # isal's stub declares `error` an instance; it is the exception class.
    isal_error: type[Exception] = isal_zlib.error  # type: ignore[assignment]
    return _Deflate("isal", 3, 3, isal_zlib, (isal_error,))


DEFLATE = _deflate_library()


class _Stream:
    """A one-stream compressor (bz2, xz, or none: `engine` None) in the Compressor shape."""

    def __init__(self, engine: _StreamEngine | None) -> None:
        self._engine = engine

    def compress(self, data: Any) -> bytes | memoryview:
        return self._engine.compress(data) if self._engine is not None else memoryview(data)

    def flush(self) -> bytes:
        return self._engine.flush() if self._engine is not None else b""

    def close(self) -> None:
        pass


# Uncompressed bytes per independently deflated block: 512 KiB kept peak RSS 5-7 MiB lower
# than 1 MiB at the same speed and size (the cuts cost nothing measurable).
GZIP_BLOCK = 512 << 10
_WINDOW = 32 << 10  # deflate's window: what each block is primed with
# No file name, mtime 0 (reproducible), no extra flags, OS "unknown" (as Go and Python write).
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def deflate_threads() -> int:
    """Threads for ParallelGzip: the CPUs this process may use, at most 4 (beyond that the
    rest of the pipeline, which has one thread per stage, cannot keep them busy)."""
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count() or 1
    return max(1, min(available, 4))


def _native_pool(threads: int) -> ThreadPoolExecutor:
    """Threads of the operating system for the deflate. In a process whose `threading` gevent
    has patched (the registry's gevent workers converting OCI pushes), threads are greenlets of
    one OS thread, which would deflate one block after the other and hold up every connection
    meanwhile: gevent's own pool then gives native threads, whose futures greenlets wait on."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        from gevent.threadpool import ThreadPoolExecutor as NativeThreadPoolExecutor

        native: ThreadPoolExecutor = NativeThreadPoolExecutor(threads)  # (gevent is untyped)
        return native
    from concurrent.futures import ThreadPoolExecutor  # see the imports above

    return ThreadPoolExecutor(threads, thread_name_prefix="aci-deflate")


def _deflate_block(block: Any, window: Any) -> bytes:
    """One block as raw deflate, primed with `window` (the bytes before it), ended by a sync
    flush (byte-aligned, not final) so blocks concatenate into one stream."""
    if window:
        engine = DEFLATE.compressobj(DEFLATE.level, DEFLATE.deflated, -15, DEFLATE.mem_level,
                                     DEFLATE.default_strategy, window)
    else:
        engine = DEFLATE.compressobj(DEFLATE.level, DEFLATE.deflated, -15, DEFLATE.mem_level)
    return engine.compress(block) + engine.flush(DEFLATE.sync_flush)


class ParallelGzip:
    """One gzip member deflated on several threads (pigz's scheme): the stream is cut every
    GZIP_BLOCK bytes, each block is deflated on its own, primed with the 32 KiB before it (so
    almost nothing is lost at the cuts) and sync-flushed, and the blocks are written in order
    behind one header and one CRC-32/length trailer. Both deflate libraries release the GIL, so
    compression takes whatever CPU the rest of the pipeline leaves, instead of one core.

    The bytes depend on the content, the library and its level only: not on how the input was
    cut into `compress` calls, nor on the number of threads. At most threads + 1 blocks are in
    flight; `compress` waits for the oldest beyond that (back-pressure, bounded memory).
    """

    def __init__(self, threads: int | None = None) -> None:
        self._threads = threads if threads is not None else deflate_threads()
        self._pool: ThreadPoolExecutor | None = None  # started with the first block
        from collections import deque  # see the imports above

        self._pending: collections.deque[Future[bytes]] = deque()
        self._pieces: list[memoryview] = []  # input not yet making up a whole block
        self._held = 0
        self._window: Any = b""
        self._crc = 0
        self._size = 0
        self._started = False

    def compress(self, data: Any) -> bytes:
        """Take `data` (bytes, or a view of bytes: it must not change afterwards, since it is
        deflated later, without a copy); return the compressed bytes ready so far."""
        view = memoryview(data)
        self._crc = DEFLATE.crc32(view, self._crc)
        self._size += len(view)
        while view:
            take = min(GZIP_BLOCK - self._held, len(view))
            self._pieces.append(view[:take])
            self._held += take
            view = view[take:]
            if self._held == GZIP_BLOCK:
                self._submit()
        return self._ready(wait=False)

    def flush(self) -> bytes:
        """The rest of the stream: the last block, the final empty block and the trailer."""
        if self._held or not self._size:  # (an empty stream still gets its one empty block)
            self._submit()
        tail = self._ready(wait=True)
        ending = DEFLATE.compressobj(DEFLATE.level, DEFLATE.deflated, -15).flush()
        self.close()
        return tail + ending + (self._crc & 0xFFFFFFFF).to_bytes(4, "little") \
            + (self._size & 0xFFFFFFFF).to_bytes(4, "little")

    def close(self) -> None:
        """Stop the threads (also after an error: queued blocks are dropped)."""
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _submit(self) -> None:
        from concurrent.futures import Future  # see the imports above

        block: Any = self._pieces[0] if len(self._pieces) == 1 else b"".join(self._pieces)
        self._pieces, self._held = [], 0
        window, self._window = self._window, memoryview(block)[-_WINDOW:]
        future: Future[bytes]
        if self._threads <= 1:
            future = Future()
            future.set_result(_deflate_block(block, window))
        else:
            if self._pool is None:
                self._pool = _native_pool(self._threads)
            future = self._pool.submit(_deflate_block, block, window)
        self._pending.append(future)

    def _ready(self, *, wait: bool) -> bytes:
        out = [] if self._started else [_GZIP_HEADER]
        self._started = True
        pending = self._pending
        while pending and (wait or pending[0].done() or len(pending) > self._threads + 1):
            out.append(pending.popleft().result())
        return b"".join(out)


def compressor(kind: str) -> Compressor:
    """A streaming compressor for `kind` (one of COMPRESSIONS); output is reproducible.
    `close()` it when done (also after an error), for ParallelGzip's threads."""
    if kind == GZIP:
        return ParallelGzip()
    if kind == BZIP2:
        import bz2  # see the imports above

        return _Stream(bz2.BZ2Compressor(9))
    if kind == XZ:
        import lzma

        return _Stream(lzma.LZMACompressor(format=lzma.FORMAT_XZ))
    if kind == NONE:
        return _Stream(None)
    raise ValueError(f"unknown compression {kind!r}")


def detect(prefix: bytes) -> str:
    """The compression whose magic bytes start `prefix` (at least MAGIC_LENGTH bytes when
    the file is that long); anything else is taken as an uncompressed tar."""
    for magic, name in _MAGIC:
        if prefix.startswith(magic):
            return name
    return NONE


if TYPE_CHECKING:
    class Readable(Protocol):
        """What the readers need of a source: `read(size)` (a file, an HTTP body, a tee...)."""

        def read(self, size: int, /) -> bytes: ...


if TYPE_CHECKING:
    class _Engine(Protocol):
        """The shared shape of bz2/lzma decompressors (zlib's is adapted to it below)."""

        @property
        def eof(self) -> bool: ...

        @property
        def unused_data(self) -> bytes: ...

        @property
        def needs_input(self) -> bool: ...

        def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


class _ZlibEngine:
    """The deflate library's decompressobj (zlib's interface, ISA-L's too) behind the bz2/lzma
    interface (max_length leaves unconsumed_tail)."""

    def __init__(self) -> None:
        self._inner = DEFLATE.decompressobj(31)  # 31: gzip header and trailer

    @property
    def eof(self) -> bool:
        return self._inner.eof

    @property
    def unused_data(self) -> bytes:
        return self._inner.unused_data

    @property
    def needs_input(self) -> bool:
        return not self._inner.unconsumed_tail

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        if not data:
            data = self._inner.unconsumed_tail
        return self._inner.decompress(data, max(max_length, 0))


# What a decompressor raises on corrupt input, besides its library's own error (bz2's is OSError).
_STREAM_ERRORS: tuple[type[Exception], ...] = (OSError, EOFError, ValueError)


def _engine(kind: str) -> tuple[_Engine, tuple[type[Exception], ...]]:
    """A decompressor for `kind` and the errors it raises on corrupt input."""
    if kind == GZIP:
        return _ZlibEngine(), (*DEFLATE.errors, *_STREAM_ERRORS)
    if kind == BZIP2:
        import bz2  # see the imports above

        return bz2.BZ2Decompressor(), _STREAM_ERRORS
    import lzma

    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ), (lzma.LZMAError, *_STREAM_ERRORS)


class CountingReader:
    """Counts the compressed bytes read (the bomb guard compares against it)."""

    def __init__(self, fileobj: Readable, prefix: bytes = b"") -> None:
        self._fileobj = fileobj
        self._pending = prefix
        self.count = 0

    def read(self, size: int) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
        else:
            data = self._fileobj.read(size)
        self.count += len(data)
        return data


def decompressed_chunks(source: CountingReader, kind: str,
                        chunk_size: int = CHUNK_SIZE) -> Generator[bytes, None, None]:
    """The decompressed stream in chunks of at most `chunk_size` bytes, read to EOF.

    Concatenated members/streams (as `gzip -dc`, `bzip2 -dc` and `xz -dc` accept) are
    decoded in turn; zero padding after the last one is ignored; anything else is refused.
    """
    if kind == NONE:
        while data := source.read(READ_SIZE):
            yield data
        return
    engine, errors = _engine(kind)
    data = b""
    while True:
        if engine.eof:
            following = _next_member(source, engine.unused_data, kind)
            if following is None:
                return
            data = following
            engine, errors = _engine(kind)
        if not data and engine.needs_input:
            data = source.read(READ_SIZE)
            if not data:
                # Output may still be pending inside the engine; only then is it truncated.
                output = _step(engine, errors, source, b"", chunk_size, kind)
                if output:
                    yield output
                    continue
                raise ArchiveError(f"{kind}: compressed stream ends early (truncated file)",
                                   reason="truncated")
        output = _step(engine, errors, source, data, chunk_size, kind)
        data = b""
        if output:
            yield output


def _step(engine: _Engine, errors: tuple[type[Exception], ...], source: CountingReader,
          data: bytes, chunk_size: int, kind: str) -> bytes:
    try:
        return engine.decompress(data, chunk_size)
    except errors as error:
        _drain(source)
        raise ArchiveError(f"{kind}: corrupt compressed data ({error})",
                           reason="bad-compression") from None


def _next_member(source: CountingReader, leftover: bytes, kind: str) -> bytes | None:
    """After one member ends: the start of the next one, or None at EOF. Zero padding
    before EOF is tolerated (tape-style blocking); any other trailing bytes are refused."""
    rest = leftover
    while not rest.strip(b"\0"):
        rest = source.read(READ_SIZE)
        if not rest:
            return None
    if len(rest) < MAGIC_LENGTH:
        rest += source.read(MAGIC_LENGTH)
    if detect(rest[:MAGIC_LENGTH]) != kind:
        _drain(source)
        raise ArchiveError(f"{kind}: garbage after the compressed data", reason="bad-compression")
    return rest


def _drain(source: CountingReader) -> None:
    """Read to EOF so a caller teeing the stream into a file still gets all of it."""
    while source.read(READ_SIZE):
        pass
