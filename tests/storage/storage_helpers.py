"""Helpers of the storage tests: deterministic blobs generated in chunks, small commits."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from pathlib import Path

from registry.server.storage import BlobStorage, blob_key

MiB = 1024 * 1024


def chunks(total: int, seed: int = 1, size: int = MiB) -> Iterator[bytes]:
    """Deterministic pseudo-random bytes, generated a chunk at a time (never all in memory)."""
    rng = random.Random(seed)
    for offset in range(0, total, size):
        yield rng.randbytes(min(size, total - offset))


def sha512_of_chunks(total: int, seed: int = 1) -> str:
    digest = hashlib.sha512()
    for chunk in chunks(total, seed):
        digest.update(chunk)
    return f"sha512-{digest.hexdigest()}"


def write_blob(storage: BlobStorage, data: bytes) -> str:
    """Commit small `data` under its content address and return the key."""
    key = blob_key(f"sha512-{hashlib.sha512(data).hexdigest()}")
    with storage.upload() as upload:
        upload.write(data)
        storage.commit(upload, key)
    return key


def make_old(path: Path, seconds: float) -> None:
    """Backdate a file's times, as if its writer stopped `seconds` ago."""
    stamp = os.stat(path).st_mtime - seconds
    os.utime(path, (stamp, stamp))
