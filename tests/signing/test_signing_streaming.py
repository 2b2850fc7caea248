"""StreamingVerifier: a signature checked while the bytes arrive, in pieces."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from registry.signing import (
    SecretKey,
    SigningError,
    StreamingVerifier,
    sign_detached,
    verify_stream,
)


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.fixture(scope="module")
def payload() -> bytes:
    return os.urandom(3 * 1024 * 1024 + 17)


@pytest.mark.parametrize("size", [1, 4096, 1 << 20])
def test_pieces_of_any_size_verify(rsa_key: SecretKey, payload: bytes, size: int) -> None:
    data = payload if size > 1 else payload[:5000]  # one-byte writes: keep it short
    signature = sign_detached(rsa_key, data)
    with StreamingVerifier(signature, [rsa_key.public_key]) as verifier:
        for piece in chunks(data, size):
            verifier.update(piece)
        assert verifier.finish() == rsa_key.public_key
    assert verifier.bytes_seen == len(data)


def test_tampered_missing_or_extra_bytes_fail(rsa_key: SecretKey, payload: bytes) -> None:
    signature = sign_detached(rsa_key, payload)
    flipped = bytearray(payload)
    flipped[len(payload) // 2] ^= 0x40
    for data in (bytes(flipped), payload[:-1], payload + b"\0", b""):
        with StreamingVerifier(signature, [rsa_key.public_key]) as verifier:
            for piece in chunks(data, 65536):
                verifier.update(piece)
            with pytest.raises(SigningError, match="bad signature by " + rsa_key.fingerprint):
                verifier.finish()


def test_unknown_signer_fails_before_any_byte(rsa_key: SecretKey, other_key: SecretKey) -> None:
    signature = sign_detached(other_key, b"data")
    with pytest.raises(SigningError, match="unknown key"):
        StreamingVerifier(signature, [rsa_key.public_key])
    with pytest.raises(SigningError, match="not an OpenPGP signature"):
        StreamingVerifier(b"junk", [rsa_key.public_key])


def test_verify_stream_reads_a_file_object(rsa_key: SecretKey, other_key: SecretKey,
                                           payload: bytes, tmp_path: Path) -> None:
    signature = sign_detached(other_key, payload)
    keys = [rsa_key.public_key, other_key.public_key]
    assert verify_stream(signature, io.BytesIO(payload), keys) == other_key.public_key
    path = tmp_path / "image.aci"
    path.write_bytes(payload)
    with open(path, "rb") as stream:
        assert verify_stream(signature.decode(), stream, keys) == other_key.public_key


def test_a_verifier_is_used_once_and_abort_cleans_up(rsa_key: SecretKey) -> None:
    signature = sign_detached(rsa_key, b"abc")
    verifier = StreamingVerifier(signature, [rsa_key.public_key])
    verifier.update(b"abc")
    assert verifier.finish() == rsa_key.public_key
    with pytest.raises(SigningError, match="already finished"):
        verifier.update(b"more")
    aborted = StreamingVerifier(signature, [rsa_key.public_key])
    process = aborted._process
    aborted.update(b"ab")
    aborted.abort()
    assert process is not None and process.poll() is not None
    with pytest.raises(SigningError, match="already finished"):
        aborted.finish()


def test_gpg_signature_streams(gpg, tmp_path: Path, payload: bytes) -> None:
    from registry.signing import read_public_keys

    gpg("--quick-generate-key", "gpg user <gpg@example.test>", "rsa2048", "sign", "never")
    listing = gpg("--with-colons", "--list-keys").stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    [key] = read_public_keys(gpg("--armor", "--export", fingerprint).stdout)
    data = tmp_path / "image.aci"
    data.write_bytes(payload)
    signature = tmp_path / "image.aci.asc"
    gpg("--armor", "--detach-sign", "--output", str(signature), str(data))
    with open(data, "rb") as stream:
        assert verify_stream(signature.read_bytes(), stream, [key]) == key
