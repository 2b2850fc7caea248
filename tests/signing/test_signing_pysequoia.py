"""registry.signing on its own: keys, detached signatures, and every kind of bad input."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from registry.signing import (
    PublicKey,
    SecretKey,
    SigningError,
    export_public_keys,
    generate_key,
    load_secret_key,
    read_public_keys,
    read_signature,
    sign_detached,
    signature_issuer,
    verify_detached,
)


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_generated_key_facts(rsa_key: SecretKey) -> None:
    key = rsa_key.public_key
    assert len(key.fingerprint) == 40 and key.fingerprint == key.fingerprint.upper()
    int(key.fingerprint, 16)
    assert key.user_ids == ("pyrkt test registry <registry@example.test>",)
    assert key.created is not None and key.expires is None and not key.revoked
    assert key.key_id == key.fingerprint[-16:]
    # One sign-capable RSA primary, no subkeys: the shape rkt 1.x's Go OpenPGP reads.
    assert key.key_fingerprints == (key.fingerprint,)
    assert rsa_key.armored_public().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert "PRIVATE" not in rsa_key.armored_public()
    assert rsa_key.armored_secret().startswith("-----BEGIN PGP PRIVATE KEY BLOCK-----")


def test_secret_key_round_trip_signs_the_same_way(rsa_key: SecretKey, tmp_path: Path) -> None:
    again = load_secret_key(rsa_key.armored_secret())
    assert again.fingerprint == rsa_key.fingerprint
    signature = sign_detached(again, b"payload")
    assert verify_detached(signature, b"payload", [rsa_key.public_key]).fingerprint == rsa_key.fingerprint


def test_sign_and_verify_a_file_by_path(rsa_key: SecretKey, tmp_path: Path) -> None:
    image = tmp_path / "image.aci"
    image.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4096)
    signature = sign_detached(rsa_key, image)
    assert signature.startswith(b"-----BEGIN PGP SIGNATURE-----")
    assert verify_detached(signature, image, read_public_keys(rsa_key.armored_public())) \
        == rsa_key.public_key
    assert verify_detached(signature, str(image), [rsa_key.public_key]) == rsa_key.public_key
    # The signature covers the exact bytes, so the same content as bytes verifies too.
    assert verify_detached(signature.decode(), image.read_bytes(), [rsa_key.public_key])


@pytest.mark.parametrize("offset", [0, 5000, -1])
def test_a_flipped_byte_fails(rsa_key: SecretKey, tmp_path: Path, offset: int) -> None:
    image = tmp_path / "image.aci"
    image.write_bytes(b"A" * 10000)
    signature = sign_detached(rsa_key, image)
    flip_byte(image, offset)
    with pytest.raises(SigningError, match="bad signature by " + rsa_key.fingerprint):
        verify_detached(signature, image, [rsa_key.public_key])


def test_unknown_signer_is_named(rsa_key: SecretKey, other_key: SecretKey) -> None:
    signature = sign_detached(other_key, b"data")
    issuer = signature_issuer(signature)
    assert other_key.public_key.has_component(issuer)
    with pytest.raises(SigningError) as caught:
        verify_detached(signature, b"data", [rsa_key.public_key])
    message = str(caught.value)
    assert "unknown key" in message and issuer in message and issuer[-16:] in message
    assert rsa_key.fingerprint in message  # says which keys were tried


def test_the_right_signer_is_picked_among_several(rsa_key: SecretKey, other_key: SecretKey) -> None:
    keys = [rsa_key.public_key, other_key.public_key]
    assert verify_detached(sign_detached(other_key, b"x"), b"x", keys) == other_key.public_key
    assert verify_detached(sign_detached(rsa_key, b"x"), b"x", keys) == rsa_key.public_key


def test_export_several_keys_in_one_block(rsa_key: SecretKey, other_key: SecretKey) -> None:
    block = export_public_keys([rsa_key.public_key, other_key.public_key])
    assert block.count("-----BEGIN PGP PUBLIC KEY BLOCK-----") == 1
    assert [k.fingerprint for k in read_public_keys(block)] == [rsa_key.fingerprint,
                                                                other_key.fingerprint]


def test_read_public_keys_strips_secret_material(other_key: SecretKey) -> None:
    [key] = read_public_keys(other_key.armored_secret())
    assert key.fingerprint == other_key.fingerprint
    assert "PRIVATE" not in key.armored()


def test_an_expired_key_is_refused_with_its_expiry() -> None:
    retiring = generate_key("retired <old@example.test>", cipher="cv25519")
    old_signature = sign_detached(retiring, b"old image")
    signed_at = read_signature(old_signature).created
    assert signed_at is not None
    published = retiring.public_key_expiring(signed_at + timedelta(seconds=1))
    assert published.expires == signed_at + timedelta(seconds=1)
    time.sleep(max(0.0, (published.expires - datetime.now(UTC)).total_seconds()) + 1.1)
    # Before the expiry it verified; after it, old and new signatures are refused, naming why.
    assert verify_detached(old_signature, b"old image", [retiring.public_key]) == retiring.public_key
    for signature, data in ((old_signature, b"old image"),
                            (sign_detached(retiring, b"new image"), b"new image")):
        with pytest.raises(SigningError, match=f"refused: key {retiring.fingerprint} .* expired on"):
            verify_detached(signature, data, [published])


@pytest.mark.parametrize("garbage", [b"", b"garbage", "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxx\n"
                                     "-----END PGP PUBLIC KEY BLOCK-----\n", b"\x99\x01\x0d"])
def test_garbage_keys(garbage: bytes | str) -> None:
    with pytest.raises(SigningError, match="public key"):
        read_public_keys(garbage)


@pytest.mark.parametrize("garbage", [b"", "not a signature", b"\x88\x00"])
def test_garbage_signatures(rsa_key: SecretKey, garbage: bytes | str) -> None:
    with pytest.raises(SigningError, match="not an OpenPGP signature"):
        verify_detached(garbage, b"data", [rsa_key.public_key])


def test_a_key_is_not_a_signature(rsa_key: SecretKey) -> None:
    with pytest.raises(SigningError, match="not an OpenPGP signature"):
        verify_detached(rsa_key.armored_public(), b"data", [rsa_key.public_key])


def test_other_bad_inputs(rsa_key: SecretKey, tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="no secret key material"):
        load_secret_key(rsa_key.armored_public())
    with pytest.raises(SigningError, match="secret key"):
        load_secret_key("junk")
    with pytest.raises(SigningError, match="no such file"):
        sign_detached(rsa_key, tmp_path / "missing.aci")
    with pytest.raises(SigningError, match="no such file"):
        verify_detached(sign_detached(rsa_key, b"x"), tmp_path / "missing.aci", [rsa_key.public_key])
    with pytest.raises(SigningError, match="unknown cipher"):
        generate_key("x <x@example.test>", cipher="dsa512")
    with pytest.raises(SigningError, match="user ID"):
        generate_key(" ")
    with pytest.raises(SigningError, match="unknown key"):
        verify_detached(sign_detached(rsa_key, b"x"), b"x", [])


def test_public_key_equality_ignores_the_cert_object(rsa_key: SecretKey) -> None:
    again = read_public_keys(rsa_key.armored_public())[0]
    assert isinstance(again, PublicKey) and again == rsa_key.public_key
    assert again.describe().startswith(rsa_key.fingerprint)
