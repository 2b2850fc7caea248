"""Reading blobs safely: digests checked while streaming, sizes bounded, layers decompressed."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, BinaryIO

from registry.docker.errors import DockerError

# Manifests, indexes and configs are small JSON documents; anything bigger is hostile.
MAX_JSON_BYTES = 4 * 1024 * 1024
CHUNK = 1024 * 1024

_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
}


def parse_digest(digest: str) -> tuple[str, str]:
    """Split `sha256:hex` into algorithm and hex, refusing anything else."""
    algorithm, _, hexpart = digest.partition(":")
    lengths = {"sha256": 64, "sha512": 128}
    if algorithm not in lengths or len(hexpart) != lengths[algorithm] or not all(
            c in "0123456789abcdef" for c in hexpart):
        raise DockerError(f"bad digest {digest!r}", reason="bad-manifest")
    return algorithm, hexpart


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


class VerifyingReader(io.RawIOBase):
    """Passes bytes through while hashing them; `verify()` at EOF compares with the expected digest.

    Verification happens as the bytes flow so nothing is ever buffered whole, and a mismatch is
    reported before the caller commits anything built from them.
    """

    def __init__(self, raw: IO[bytes], expected: str | None, what: str) -> None:
        super().__init__()
        self._raw = raw
        self._expected = expected
        self._what = what
        algorithm = parse_digest(expected)[0] if expected else "sha256"
        self._hash = hashlib.new(algorithm)
        self._algorithm = algorithm
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._raw.read(len(buffer))
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as err:
            # Raised as our own error so tarfile cannot mistake it for the end of the archive.
            raise DockerError(f"{self._what}: corrupt or truncated data: {err}",
                              reason="bad-layer") from err
        if not data:
            return 0
        n = len(data)
        buffer[:n] = data
        self._hash.update(data)
        self.size += n
        return n

    @property
    def digest(self) -> str:
        return f"{self._algorithm}:{self._hash.hexdigest()}"

    def drain_and_verify(self) -> str:
        """Read what is left (tar padding, compressor trailers) and check the digest."""
        while self.read(CHUNK):
            pass
        if self._expected and self.digest != self._expected:
            raise DockerError(f"{self._what}: digest mismatch: expected {self._expected}, "
                              f"got {self.digest}", reason="digest-mismatch")
        return self.digest


def read_limited(stream: IO[bytes], what: str, limit: int = MAX_JSON_BYTES) -> bytes:
    """Read a whole small document, refusing one larger than `limit` without reading past it."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise DockerError(f"{what} is larger than the {limit} byte limit", reason="too-large")
    return data


def load_json(data: bytes, what: str, expected_digest: str | None = None) -> dict[str, Any]:
    """Parse a JSON object, checking its digest first when one is known."""
    if expected_digest is not None:
        algorithm = parse_digest(expected_digest)[0]
        actual = digest_of(data, algorithm)
        if actual != expected_digest:
            raise DockerError(f"{what}: digest mismatch: expected {expected_digest}, got {actual}",
                              reason="digest-mismatch")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise DockerError(f"{what} is not valid JSON: {err}", reason="bad-manifest") from err
    if not isinstance(document, dict):
        raise DockerError(f"{what} is not a JSON object", reason="bad-manifest")
    return document


def _decompressor(stream: BinaryIO, what: str) -> IO[bytes]:
    peekable = io.BufferedReader(stream, CHUNK)  # type: ignore[arg-type]
    head = peekable.peek(6)[:6]
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            if kind == "gzip":
                return gzip.GzipFile(fileobj=peekable, mode="rb")
            if kind == "bzip2":
                return bz2.BZ2File(peekable, "rb")
            if kind == "xz":
                return lzma.LZMAFile(peekable, "rb")
            raise DockerError(f"{what}: zstd-compressed layers are not supported",
                              reason="unsupported")
    return peekable


@contextmanager
def open_layer(opener: Callable[[], BinaryIO], *, digest: str | None, diff_id: str | None,
               what: str) -> Iterator[IO[bytes]]:
    """Yield the uncompressed tar stream of a layer; on a clean exit verify both digests.

    `digest` is the blob's (compressed) digest, `diff_id` the uncompressed one from the image
    config; either may be unknown. The caller must have consumed the tar; what is left over is
    drained here so the digests cover every byte.
    """
    with opener() as source:
        raw = VerifyingReader(source, digest, what)
        with _corruption_reported(what):
            decompressed = _decompressor(raw, what)  # type: ignore[arg-type]
        uncompressed = VerifyingReader(decompressed, diff_id, f"{what} (uncompressed)")
        yield io.BufferedReader(uncompressed, CHUNK)
        with _corruption_reported(what):
            uncompressed.drain_and_verify()
            raw.drain_and_verify()


@contextmanager
def _corruption_reported(what: str) -> Iterator[None]:
    try:
        yield
    except (OSError, EOFError, lzma.LZMAError) as err:
        raise DockerError(f"{what}: corrupt or truncated data: {err}", reason="bad-layer") from err
