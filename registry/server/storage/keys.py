"""Storage keys: validation of caller-chosen keys and the content-addressed `blob_key`."""

from __future__ import annotations

import re

from .errors import InvalidKey

# A key is a relative path of segments that start with a letter or digit: no empty
# segments, no "." or "..", nothing hidden. Backends keep their own bookkeeping under
# names that start with "." so they can never collide with a key.
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._=+-]*"
_KEY_RE = re.compile(rf"^{_SEGMENT}(/{_SEGMENT})*$")
MAX_KEY_LENGTH = 512

# Hex lengths of the digests a blob may be addressed by.
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^(?P<algo>[a-z0-9]+)[-:](?P<hex>[0-9a-f]+)$")


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a safe storage key, else raise `InvalidKey`."""
    if not isinstance(key, str):
        raise InvalidKey(f"storage key must be a string, not {type(key).__name__}")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"storage key longer than {MAX_KEY_LENGTH} characters")
    if not _KEY_RE.fullmatch(key) or ".." in key.split("/"):
        raise InvalidKey(
            f"bad storage key {key!r}: expected segments of letters, digits and ._=+- "
            "separated by '/', each starting with a letter or digit"
        )
    return key


def validate_prefix(prefix: str) -> str:
    """Return a key prefix for listing ("" or the start of a key), else raise `InvalidKey`."""
    if prefix == "":
        return prefix
    # A prefix may end in "/" or mid-segment; validating it with a dummy tail checks the rest.
    probe = prefix + "x" if prefix.endswith("/") else prefix
    validate_key(probe)
    return prefix


def blob_key(digest: str) -> str:
    """The content-addressed key of a blob: `sha512-abcd...` -> `blobs/sha512/ab/abcd...`.

    Accepts `algo-hex` (appc image IDs) and `algo:hex` (OCI digests), lower-case hex of the
    algorithm's full length. The two-character fan-out keeps directories small on local disks.
    """
    match = _DIGEST_RE.fullmatch(digest) if isinstance(digest, str) else None
    if not match:
        raise InvalidKey(f"bad digest {digest!r}: expected ALGO-HEX such as sha512-<128 hex>")
    algo, hexdigest = match["algo"], match["hex"]
    expected = _DIGEST_HEX_LENGTHS.get(algo)
    if expected is None:
        raise InvalidKey(f"bad digest {digest!r}: unsupported algorithm {algo!r}")
    if len(hexdigest) != expected:
        raise InvalidKey(
            f"bad digest {digest!r}: {algo} needs {expected} hex digits, got {len(hexdigest)}"
        )
    return f"blobs/{algo}/{hexdigest[:2]}/{hexdigest}"
