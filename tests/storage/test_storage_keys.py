"""Storage keys: the content-addressed `blob_key` and the validation that keeps keys inside."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.server.storage import InvalidKey, blob_key, validate_key


def test_blob_key_of_an_image_id():
    hexdigest = "ab" + "0123456789abcdef" * 7 + "0123456789abcd"
    assert len(hexdigest) == 128
    assert blob_key(f"sha512-{hexdigest}") == f"blobs/sha512/ab/{hexdigest}"


def test_blob_key_of_an_oci_digest():
    hexdigest = "f" * 64
    assert blob_key(f"sha256:{hexdigest}") == f"blobs/sha256/ff/{hexdigest}"


@pytest.mark.parametrize(
    ("digest", "complaint"),
    [
        ("sha512-" + "A" * 128, "expected ALGO-HEX"),
        ("sha512-" + "a" * 127, "needs 128 hex digits, got 127"),
        ("sha256-" + "a" * 128, "needs 64 hex digits, got 128"),
        ("md5-" + "a" * 32, "unsupported algorithm 'md5'"),
        ("sha512-../../etc", "expected ALGO-HEX"),
        ("", "expected ALGO-HEX"),
        ("sha512-" + "a" * 128 + "\n", "expected ALGO-HEX"),
    ],
)
def test_bad_digests(digest, complaint):
    with pytest.raises(InvalidKey, match=complaint.replace("(", r"\(")):
        blob_key(digest)


@pytest.mark.parametrize("key", ["a", "blobs/sha512/ab/cd", "x-y_z.1/a=+", "A/B"])
def test_good_keys(key):
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key", ["", "/a", "a/", "a//b", "..", "a/../b", ".hidden", "a/.b", "a\\b", "a b", "é", "a\0b", "a\n", "sha512-x\n",
            "x" * 513]
)
def test_bad_keys(key):
    with pytest.raises(InvalidKey):
        validate_key(key)


def test_non_string_key():
    with pytest.raises(InvalidKey, match="must be a string"):
        validate_key(b"bytes")  # type: ignore[arg-type]


@given(st.text(alphabet="ab./\\-_ \0", max_size=20))
def test_an_accepted_key_never_leaves_the_root(key):
    """Whatever the text, a key either is refused or names a path strictly below the root."""
    try:
        validate_key(key)
    except InvalidKey:
        return
    parts = PurePosixPath(key).parts
    assert parts and all(part not in ("", ".", "..") and not part.startswith(".") for part in parts)
    assert not key.startswith("/") and "\\" not in key and "\0" not in key
