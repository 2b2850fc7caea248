"""Compression of ACI files, the one table for every reader and writer: detection by magic
bytes, streaming decompression in bounded chunks (a bomb can never make one step produce more
than `chunk_size` bytes) and the compressors the writer uses.

gzip (deflate) both ways goes through one library, chosen here and nowhere else: ISA-L's
(`isal`, a dependency of the host side) when it imports, else the standard zlib. ISA-L's
deflate at its level 3 is about ten times zlib's level 6 on image content and its inflate about
twice zlib's, for files about 9% larger than `gzip -6` (measured in bench/bench_docker2aci.py).
Both write ordinary gzip streams that every reader accepts; the compressed bytes differ between
the two, the tar inside (and so the image ID) does not."""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable, Generator
from typing import NamedTuple, Protocol

from registry.aci.errors import ArchiveError

GZIP, BZIP2, XZ, NONE = "gzip", "bzip2", "xz", "none"
COMPRESSIONS = (GZIP, BZIP2, XZ, NONE)
_MAGIC = ((b"\x1f\x8b", GZIP), (b"BZh", BZIP2), (b"\xfd7zXZ\x00", XZ))
MAGIC_LENGTH = 6

READ_SIZE = 256 << 10    # compressed bytes read per step (the bomb guard's granularity)
CHUNK_SIZE = 1 << 20     # at most this many decompressed bytes per step


class Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _Inflater(Protocol):
    """zlib's decompressobj, as zlib and ISA-L both make it."""

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    @property
    def unconsumed_tail(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = 0, /) -> bytes: ...


class _Deflate(NamedTuple):
    name: str
    level: int
    mem_level: int
    compressobj: Callable[[int, int, int, int], Compressor]
    decompressobj: Callable[[int], _Inflater]
    errors: tuple[type[Exception], ...]


def _deflate_library() -> _Deflate:
    """The deflate library in use: ISA-L's when it imports, else zlib."""
    try:
        from isal import isal_zlib
    except ImportError:
        # Level 6: gzip's and Go's default.
        return _Deflate("zlib", 6, zlib.DEF_MEM_LEVEL, zlib.compressobj, zlib.decompressobj,
                        (zlib.error,))
    # Level 3 is ISA-L's best; memLevel 3 (smaller level buffers, so its Huffman tables adapt
    # more often) gave 1-2% smaller files than its default 8 at the same speed, on binaries
    # and text alike.
    # isal's stub declares `error` an instance; it is the exception class.
    isal_error: type[Exception] = isal_zlib.error  # type: ignore[assignment]
    return _Deflate("isal", 3, 3, isal_zlib.compressobj, isal_zlib.decompressobj,
                    (isal_error, zlib.error))


DEFLATE = _deflate_library()


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def compressor(kind: str) -> Compressor:
    """A streaming compressor for `kind` (one of COMPRESSIONS); output is reproducible."""
    if kind == GZIP:
        # wbits 31: a gzip header with mtime 0 and no file name, as reproducibility needs.
        return DEFLATE.compressobj(DEFLATE.level, zlib.DEFLATED, 31, DEFLATE.mem_level)
    if kind == BZIP2:
        return bz2.BZ2Compressor(9)
    if kind == XZ:
        return lzma.LZMACompressor(format=lzma.FORMAT_XZ)
    if kind == NONE:
        return _Identity()
    raise ValueError(f"unknown compression {kind!r}")


def detect(prefix: bytes) -> str:
    """The compression whose magic bytes start `prefix` (at least MAGIC_LENGTH bytes when
    the file is that long); anything else is taken as an uncompressed tar."""
    for magic, name in _MAGIC:
        if prefix.startswith(magic):
            return name
    return NONE


class Readable(Protocol):
    """What the readers need of a source: `read(size)` (a file, an HTTP body, a tee...)."""

    def read(self, size: int, /) -> bytes: ...


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


def _engine(kind: str) -> _Engine:
    if kind == GZIP:
        return _ZlibEngine()
    if kind == BZIP2:
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)


_ENGINE_ERRORS: tuple[type[Exception], ...] = (*DEFLATE.errors, OSError, lzma.LZMAError, EOFError, ValueError)


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
    engine = _engine(kind)
    data = b""
    while True:
        if engine.eof:
            following = _next_member(source, engine.unused_data, kind)
            if following is None:
                return
            data = following
            engine = _engine(kind)
        if not data and engine.needs_input:
            data = source.read(READ_SIZE)
            if not data:
                # Output may still be pending inside the engine; only then is it truncated.
                output = _step(engine, source, b"", chunk_size, kind)
                if output:
                    yield output
                    continue
                raise ArchiveError(f"{kind}: compressed stream ends early (truncated file)",
                                   reason="truncated")
        output = _step(engine, source, data, chunk_size, kind)
        data = b""
        if output:
            yield output


def _step(engine: _Engine, source: CountingReader, data: bytes, chunk_size: int,
          kind: str) -> bytes:
    try:
        return engine.decompress(data, chunk_size)
    except _ENGINE_ERRORS as error:
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
