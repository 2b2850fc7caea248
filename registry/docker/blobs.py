"""Blobs: digests parsed and checked, small JSON documents read within a size bound (layers
are read by layers.py through the format core's tar pipeline)."""

from __future__ import annotations

import hashlib
import json
from typing import IO, Any

from registry.docker.errors import DockerError

# Manifests, indexes and configs are small JSON documents; anything bigger is hostile.
MAX_JSON_BYTES = 4 * 1024 * 1024
CHUNK = 1024 * 1024


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
