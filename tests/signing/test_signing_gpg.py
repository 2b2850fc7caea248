"""Cross-checks with real GnuPG: what we sign gpg verifies, and what gpg signs we verify."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.signing import (
    SecretKey,
    SigningError,
    read_public_keys,
    sign_detached,
    verify_detached,
)


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    path = tmp_path / "hello.aci"
    path.write_bytes(bytes(range(256)) * 2048 + b"tail")
    return path


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_gpg_verifies_our_signature(gpg, rsa_key: SecretKey, image: Path) -> None:
    key_file = image.parent / "pubkeys.gpg"
    key_file.write_text(rsa_key.armored_public())
    gpg("--import", str(key_file))
    signature = image.parent / "hello.aci.asc"
    signature.write_bytes(sign_detached(rsa_key, image))
    result = gpg("--status-fd", "1", "--verify", str(signature), str(image))
    [validsig] = [line.split() for line in result.stdout.splitlines()
                  if line.startswith("[GNUPG:] VALIDSIG ")]
    assert validsig[-1] == rsa_key.fingerprint  # the primary key of the signing subkey
    assert rsa_key.public_key.has_component(validsig[2])
    flip_last_byte(image)
    bad = gpg("--status-fd", "1", "--verify", str(signature), str(image), check=False)
    assert bad.returncode != 0 and "BADSIG" in bad.stdout


def _gpg_key(gpg, tmp_path: Path) -> tuple[str, str]:
    """A key made by gpg itself: (fingerprint, armored public key as `gpg --armor --export` gives)."""
    gpg("--quick-generate-key", "gpg user <gpg@example.test>", "rsa3072", "sign", "never")
    listing = gpg("--with-colons", "--list-keys").stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    return fingerprint, gpg("--armor", "--export", fingerprint).stdout


def test_we_verify_a_gpg_signature_and_load_a_gpg_key(gpg, tmp_path: Path, image: Path,
                                                     rsa_key: SecretKey) -> None:
    fingerprint, armored = _gpg_key(gpg, tmp_path)
    [key] = read_public_keys(armored)
    assert key.fingerprint == fingerprint.upper()
    assert key.user_ids == ("gpg user <gpg@example.test>",)
    signature = image.parent / "hello.aci.asc"
    gpg("--armor", "--detach-sign", "--local-user", fingerprint, "--output", str(signature), str(image))
    assert verify_detached(signature.read_bytes(), image, [rsa_key.public_key, key]) == key
    # Without the gpg key in the list, the error names gpg's key.
    with pytest.raises(SigningError, match=fingerprint[-16:].upper()):
        verify_detached(signature.read_bytes(), image, [rsa_key.public_key])
    flip_last_byte(image)
    with pytest.raises(SigningError, match="bad signature"):
        verify_detached(signature.read_bytes(), image, [key])


def test_gpg_binary_signature_and_keyring_also_load(gpg, tmp_path: Path, image: Path) -> None:
    fingerprint, _ = _gpg_key(gpg, tmp_path)
    out = tmp_path / "key.gpg"
    gpg("--output", str(out), "--export", fingerprint)
    [key] = read_public_keys(out.read_bytes())
    signature = tmp_path / "hello.aci.sig"
    gpg("--detach-sign", "--local-user", fingerprint, "--output", str(signature), str(image))
    assert verify_detached(signature.read_bytes(), image, [key]).fingerprint == fingerprint.upper()


def test_gpg_imports_our_multi_key_export(gpg, rsa_key: SecretKey, other_key: SecretKey,
                                          tmp_path: Path) -> None:
    from registry.signing import export_public_keys

    block = tmp_path / "pubkeys.gpg"
    block.write_text(export_public_keys([rsa_key.public_key, other_key.public_key]))
    gpg("--import", str(block))
    listing = gpg("--with-colons", "--list-keys").stdout
    assert rsa_key.fingerprint in listing and other_key.fingerprint in listing


def test_a_passphrase_protected_gpg_secret_key_signs(gpg, tmp_path: Path, image: Path) -> None:
    from registry.signing import load_secret_key

    home_args = ("--passphrase", "correct horse")
    gpg(*home_args, "--quick-generate-key", "locked <locked@example.test>", "rsa2048", "sign", "never")
    listing = gpg("--with-colons", "--list-keys").stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    armored = gpg(*home_args, "--armor", "--export-secret-keys", fingerprint).stdout
    with pytest.raises(SigningError, match="cannot sign"):
        sign_detached(load_secret_key(armored), image)
    with pytest.raises(SigningError, match="cannot sign"):
        sign_detached(load_secret_key(armored, password="wrong"), image)
    key = load_secret_key(armored, password="correct horse")
    assert key.fingerprint == fingerprint
    signature = image.parent / "hello.aci.asc"
    signature.write_bytes(sign_detached(key, image))
    result = gpg("--status-fd", "1", "--verify", str(signature), str(image))
    assert "GOODSIG" in result.stdout
