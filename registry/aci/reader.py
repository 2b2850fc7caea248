"""Reading an ACI in one streaming pass: compression by magic bytes, the image ID (SHA-512
of the uncompressed tar), the layout and the manifest, in bounded memory.

Decompression, hashing and parsing overlap in threads (see pipeline.py).

Computing an image ID is a whole process of its own (`image_id_of` behind `pyrkt image` and
the benchmarks): at 128 MiB, importing the whole format core cost a tenth of the run, so this
module loads only what hashing needs, and the tar parser, layout checker and manifest model
when a caller parses (`read_aci`, a handler given to `stream_archive`);
tests/aci/test_aci_lean_import.py holds it to that."""

from __future__ import annotations

import os

from registry.aci.compression import (
    MAGIC_LENGTH,
    NONE,
    READ_SIZE,
    CountingReader,
    decompressed_chunks,
    detect,
)
from registry.aci.errors import ArchiveError
from registry.aci.pipeline import BackgroundHash, Prefetch

# Function-local imports of the tar parser, layout checker, manifest and ACIInfo (with the
# records and typing behind it) keep image_id_of lean; so does not importing typing here
# (type checkers take a module-level `TYPE_CHECKING = False` as theirs).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from registry.aci.compression import Readable
    from registry.aci.info import ACIInfo
    from registry.aci.tarstream import EntryHandler

    Source = Readable | str | os.PathLike[str]

IMAGE_ID_PREFIX = "sha512-"
SHORT_ID_HEX_DIGITS = 32
DEFAULT_MAX_UNCOMPRESSED = 32 << 30
# The bomb guard: past BOMB_FLOOR uncompressed bytes, a stream that expanded more than
# DEFAULT_MAX_RATIO times its compressed size so far is refused. Real images stay far below
# (text compresses ~5-20x); gzip's ceiling is ~1030x, xz and bzip2 go much higher on zeros.
DEFAULT_MAX_RATIO = 250
BOMB_FLOOR = 64 << 20

def short_id(image_id: str) -> str:
    """`sha512-` and the first 32 hex digits, as rkt shows image IDs."""
    return image_id[: len(IMAGE_ID_PREFIX) + SHORT_ID_HEX_DIGITS]


class opened:  # noqa: N801 - used as a function, as contextlib's generator version was
    """`with opened(source) as stream`: a path opened for reading (closed after), or the
    binary stream itself (left open). A class: contextlib costs the image-ID path an import."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self._handle: Readable | None = None

    def __enter__(self) -> Readable:
        if isinstance(self._source, str | os.PathLike):
            self._handle = open(self._source, "rb")  # noqa: SIM115 - closed in __exit__
            return self._handle
        return self._source

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()  # type: ignore[attr-defined]


class Limits:
    """The decompression-bomb guard, checked after each decompressed chunk."""

    def __init__(self, max_uncompressed: int | None, max_ratio: float | None) -> None:
        self.max_uncompressed = DEFAULT_MAX_UNCOMPRESSED if max_uncompressed is None \
            else max_uncompressed
        self.max_ratio = max_ratio

    def check(self, uncompressed: int, compressed: int) -> None:
        if uncompressed > self.max_uncompressed:
            raise ArchiveError(f"uncompressed archive exceeds {self.max_uncompressed} bytes",
                               reason="too-large")
        if self.max_ratio and uncompressed > BOMB_FLOOR \
                and uncompressed > self.max_ratio * max(compressed, 1):
            raise ArchiveError(
                f"decompression bomb: {compressed} compressed bytes expand to more than"
                f" {uncompressed} (over {self.max_ratio:g}x)", reason="bomb")


def stream_archive(fileobj: Readable, handler: EntryHandler | None, limits: Limits, *,
                   digest: str | None = "sha512", allow_empty: bool = False,
                   ) -> tuple[str, str, int]:
    """Decompress, hash and (with a handler) parse a tar stream; returns (hex digest of the
    uncompressed tar, or "" when `digest` is None; compression; uncompressed size). Reads
    `fileobj` to EOF, also when the archive is refused. Every reader of tar archives (ACIs,
    Docker layers, rootfs tarballs) goes through here, so one parser and one set of stream
    errors (truncated, bad-compression, not-tar, bad-header, bomb) serve them all."""
    prefix = _read_prefix(fileobj)
    if not prefix:
        if allow_empty:
            return (BackgroundHash(digest).close() if digest else ""), NONE, 0
        raise ArchiveError("empty file: not an ACI", reason="empty")
    compression = detect(prefix)
    source = CountingReader(fileobj, prefix)
    parser = None
    if handler is not None:
        from registry.aci.tarstream import TarStreamParser

        parser = TarStreamParser(handler, allow_empty=allow_empty)
    hasher = BackgroundHash(digest) if digest else None
    inflated = decompressed_chunks(source, compression)
    # A parser holds the GIL, so inflating (which releases it) runs ahead in a helper thread;
    # without one this thread only hands chunks to the hash's, so it inflates them itself (one
    # thread and one hand-over per chunk fewer: the image ID's case).
    chunks = Prefetch(inflated) if parser is not None else inflated
    total = 0
    try:
        for chunk in chunks:
            if hasher is not None:
                hasher.update(chunk)
            total += len(chunk)
            limits.check(total, source.count)
            if parser is not None:
                parser.feed(chunk)
        if parser is not None:
            parser.finish()
    except BaseException:
        chunks.close()
        if hasher is not None:
            hasher.close()
        _drain(source)
        raise
    chunks.close()
    hexdigest = hasher.close() if hasher is not None else ""
    if total == 0 and not allow_empty:
        raise ArchiveError(f"{compression}: decompresses to nothing", reason="empty")
    return hexdigest, compression, total


def _read_prefix(fileobj: Readable) -> bytes:
    prefix = b""
    while len(prefix) < MAGIC_LENGTH:
        data = fileobj.read(MAGIC_LENGTH - len(prefix))
        if not data:
            break
        prefix += data
    return prefix


def _drain(source: CountingReader) -> None:
    while source.read(READ_SIZE):
        pass


def read_aci(fileobj: Source, *, max_uncompressed: int | None = None,
             max_ratio: float | None = DEFAULT_MAX_RATIO,
             allow_devices: bool = True) -> ACIInfo:
    """Validate an ACI in one pass and describe it; raises ArchiveError or ManifestError.

    `fileobj` (a binary file object, or a path) is read to EOF. `max_uncompressed` caps the
    tar's size (default 32 GiB); `max_ratio` is the bomb guard (None disables it).
    """
    from registry.aci.info import ACIInfo
    from registry.aci.layout import LayoutChecker
    from registry.aci.manifest import ImageManifest

    with opened(fileobj) as stream:
        checker = LayoutChecker(allow_devices=allow_devices)
        digest, compression, total = stream_archive(
            stream, checker, Limits(max_uncompressed, max_ratio))
        image_id = IMAGE_ID_PREFIX + digest
        manifest_bytes = checker.finish()
        manifest = ImageManifest.from_json(manifest_bytes)
    return ACIInfo(image_id, manifest, manifest_bytes, compression, total)


def image_id_of(fileobj: Source) -> str:
    """`sha512-<128 hex>` of the uncompressed stream; no layout checks (see read_aci)."""
    with opened(fileobj) as stream:
        digest, _, _ = stream_archive(stream, None, Limits(None, None))
    return IMAGE_ID_PREFIX + digest
