"""Walking one layer's tar stream with the format core's reader and rules: whiteouts
recognised, digests checked as the bytes flow, bounded memory.

A layer is read by `registry.aci`'s one tar pipeline (compression by magic bytes, bomb guard,
push parser) and every entry passes the same path and link rules as an ACI's rootfs/
(`registry.aci.TreeRules`), so a hostile layer is refused with the ArchiveError reason code an
ACI with the same entry gets (path-traversal, link-escape, duplicate-entry, truncated, ...).
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from registry.aci import (
    DEFAULT_MAX_RATIO,
    ArchiveError,
    Limits,
    TarEntry,
    TreeRules,
    header_from,
    normalize,
    stream_archive,
)
from registry.aci import tarstream as tar
from registry.docker.blobs import parse_digest
from registry.docker.errors import DockerError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
# AUFS bookkeeping files (.wh..wh.plnk, .wh..wh.aufs) carry no meaning for the result.
AUFS_META_PREFIX = ".wh..wh."
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

Sink = Callable[[Any], object]


def parent_of(path: str) -> str:
    return path.rpartition("/")[0]


def ancestors(path: str) -> Iterator[str]:
    """Proper ancestors of a relative path, nearest first (`a/b/c` -> `a/b`, `a`)."""
    while "/" in path:
        path = path.rpartition("/")[0]
        yield path


@dataclass(frozen=True)
class Entry:
    """One member of a layer as the squasher sees it."""

    ordinal: int
    path: str
    tar: TarEntry
    whiteout: str | None = None  # the path this whiteout removes
    opaque: str | None = None  # the directory this marker makes opaque
    link_target: str | None = None  # a hard link's target, normalized

    @property
    def is_marker(self) -> bool:
        return self.whiteout is not None or self.opaque is not None or self.path == ""

    @property
    def is_dir(self) -> bool:
        return self.tar.type == tar.DIRECTORY

    @property
    def is_regular(self) -> bool:
        return self.tar.type == tar.REGULAR


def output_header(entry: TarEntry, path: str, linkname: str = "") -> tarfile.TarInfo:
    """The ACI's header for a layer entry at `path` (relative to rootfs/); a hard link's
    target moves under rootfs/ too."""
    target = linkname or entry.linkname
    return header_from(entry, f"rootfs/{path}",
                       f"rootfs/{target}" if entry.type == tar.HARDLINK else target)


class _Classifier:
    """The parser's handler for one layer: rules first, then whiteout recognition, then the
    caller's `visit`, which returns the sink for a regular file's data (None: skipped)."""

    def __init__(self, visit: Callable[[Entry], Sink | None],
                 after: Callable[[Entry], None] | None) -> None:
        self._visit = visit
        self._after = after
        self._rules = TreeRules("", later_duplicate_replaces=True)
        self._ordinal = 0
        self._current: Entry | None = None

    def begin(self, entry: TarEntry) -> Sink | None:
        ordinal = self._ordinal
        self._ordinal += 1
        path = normalize(entry.name)
        classified = self._classify(ordinal, path, entry) if path else \
            Entry(ordinal, "", entry)  # the layer's own "./"
        if classified is None:
            return None
        self._current = classified
        return self._visit(classified)

    def end(self, entry: TarEntry) -> None:
        current, self._current = self._current, None
        if current is not None and current.tar is entry and self._after is not None:
            self._after(current)

    def _classify(self, ordinal: int, path: str, entry: TarEntry) -> Entry | None:
        base = path.rpartition("/")[2]
        if base == OPAQUE_MARKER:
            return Entry(ordinal, path, entry, opaque=parent_of(path))
        if any(part.startswith(AUFS_META_PREFIX) for part in path.split("/")):
            return None
        if base.startswith(WHITEOUT_PREFIX):
            victim = base[len(WHITEOUT_PREFIX):]
            if victim in ("", ".", ".."):
                raise ArchiveError(f"whiteout {entry.name!r} names {victim!r}, not a file",
                                   reason="path-traversal")
            parent = parent_of(path)
            return Entry(ordinal, path, entry,
                         whiteout=f"{parent}/{victim}" if parent else victim)
        target = self._rules.check(path, entry.type, entry.type_name, entry.linkname)
        return Entry(ordinal, path, entry, link_target=target or None)


class _Hashing:
    """The raw blob as stream_archive reads it, hashed on the way (the blob digest)."""

    def __init__(self, raw: BinaryIO, algorithm: str) -> None:
        self._raw = raw
        self._hash = hashlib.new(algorithm)
        self._algorithm = algorithm

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._hash.update(data)
        return data

    @property
    def digest(self) -> str:
        return f"{self._algorithm}:{self._hash.hexdigest()}"


def walk_layer(opener: Callable[[], BinaryIO], visit: Callable[[Entry], Sink | None], *,
               digest: str | None, diff_id: str | None, what: str,
               after: Callable[[Entry], None] | None = None) -> None:
    """Read the layer blob once, calling `visit` for each classified entry in order (and
    `after` once its data went to the sink `visit` returned).

    `digest` is the blob's (compressed) digest, `diff_id` the uncompressed one from the image
    config; either may be unknown (None), and both are verified at the end of the stream,
    before the caller commits anything built from it. Every failure is a DockerError; those of
    the format core keep their ArchiveError reason.
    """
    handler = _Classifier(visit, after)
    try:
        with opener() as source:
            raw = _Hashing(source, parse_digest(digest)[0] if digest else "sha256")
            head = _peek(source, raw)
            if head.startswith(_ZSTD_MAGIC):
                raise DockerError(f"{what}: zstd-compressed layers are not supported",
                                  reason="unsupported")
            diff_algorithm = parse_digest(diff_id)[0] if diff_id else None
            hexdigest, _, _ = stream_archive(
                _Prefixed(head, raw), handler, Limits(None, DEFAULT_MAX_RATIO),  # type: ignore[arg-type]
                digest=diff_algorithm, allow_empty=True)
    except ArchiveError as error:
        raise DockerError(f"{what}: {error}", reason=error.reason) from None
    except OSError as error:
        raise DockerError(f"{what}: cannot read the layer: {error}", reason="bad-layer") from None
    if digest and raw.digest != digest:
        raise DockerError(f"{what}: digest mismatch: expected {digest}, got {raw.digest}",
                          reason="digest-mismatch")
    if diff_id and diff_algorithm and f"{diff_algorithm}:{hexdigest}" != diff_id:
        raise DockerError(f"{what} (uncompressed): digest mismatch: expected {diff_id}, got "
                          f"{diff_algorithm}:{hexdigest}", reason="digest-mismatch")


def _peek(source: BinaryIO, raw: _Hashing) -> bytes:
    head = b""
    while len(head) < len(_ZSTD_MAGIC):
        data = raw.read(len(_ZSTD_MAGIC) - len(head))
        if not data:
            break
        head += data
    return head


class _Prefixed:
    """`prefix` (already read and hashed) then the rest of `raw`."""

    def __init__(self, prefix: bytes, raw: _Hashing) -> None:
        self._prefix = prefix
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size < 0 or size >= len(self._prefix):
                data, self._prefix = self._prefix, b""
                return data
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        return self._raw.read(size)
