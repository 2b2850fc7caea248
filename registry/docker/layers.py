"""Walking one layer's tar stream: safe paths, whiteout recognition, bounded memory."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from registry.docker.errors import DockerError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
# AUFS bookkeeping files (.wh..wh.plnk, .wh..wh.aufs) carry no meaning for the result.
AUFS_META_PREFIX = ".wh..wh."


def clean_path(name: str, what: str) -> str:
    """A member name relative to the root (`""` is the root), refusing any `..` component.

    Leading `/` and `./` are harmless and dropped; a `..` anywhere could write outside the
    rootfs of whoever extracts the result, so it is an error rather than something to fix up.
    """
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise DockerError(f"{what}: path {name!r} escapes the root", reason="path-traversal")
        parts.append(part)
    return "/".join(parts)


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
    info: tarfile.TarInfo
    whiteout: str | None = None  # the path this whiteout removes
    opaque: str | None = None  # the directory this marker makes opaque
    link_target: str | None = None  # a hard link's target, cleaned

    @property
    def is_marker(self) -> bool:
        return self.whiteout is not None or self.opaque is not None or self.path == ""


def _classify(ordinal: int, info: tarfile.TarInfo, what: str) -> Entry | None:
    path = clean_path(info.name, what)
    base = path.rpartition("/")[2]
    if base == OPAQUE_MARKER:
        return Entry(ordinal, path, info, opaque=parent_of(path))
    if any(part.startswith(AUFS_META_PREFIX) for part in path.split("/")):
        return None
    if base.startswith(WHITEOUT_PREFIX):
        victim = base[len(WHITEOUT_PREFIX):]
        if victim in ("", ".", ".."):
            raise DockerError(f"{what}: whiteout {info.name!r} names {victim!r}, not a file",
                              reason="path-traversal")
        parent = parent_of(path)
        return Entry(ordinal, path, info, whiteout=f"{parent}/{victim}" if parent else victim)
    link = clean_path(info.linkname, what) if info.islnk() else None
    if info.islnk() and not link:
        raise DockerError(f"{what}: hard link {info.name!r} points at the root", reason="bad-layer")
    return Entry(ordinal, path, info, link_target=link)


def walk_layer(stream: IO[bytes], what: str) -> Iterator[tuple[Entry, tarfile.TarFile]]:
    """Yield the classified entries of a layer's (uncompressed) tar stream in order.

    The tar file is yielded too so a caller can read the current member's data with
    `extractfile` before asking for the next one (the stream only goes forward).
    """
    try:
        tar = tarfile.open(fileobj=stream, mode="r|")
    except tarfile.ReadError as err:
        if "empty" in str(err):
            return
        raise DockerError(f"{what}: not a tar stream: {err}", reason="bad-layer") from err
    ordinal = 0
    with tar:
        while True:
            try:
                info = tar.next()
            except (tarfile.TarError, EOFError) as err:
                raise DockerError(f"{what}: corrupt tar: {err}", reason="bad-layer") from err
            if info is None:
                return
            # TarFile remembers every member it has seen; forget them so memory stays flat
            # however many files a layer holds.
            tar.members.clear()
            entry = _classify(ordinal, info, what)
            ordinal += 1
            if entry is not None:
                yield entry, tar
