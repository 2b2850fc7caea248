"""Detached, ASCII-armored OpenPGP signatures over a file's exact bytes (appc's NAME.aci.asc).

Paths are handed to pysequoia by name: signing streams the file, verification maps it, so an
image is never read into Python memory. Small payloads may be given as bytes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pysequoia

from registry.cooperative import native

from .errors import SigningError, sequoia_reason
from .keys import PublicKey, SecretKey

Payload = bytes | bytearray | memoryview | str | os.PathLike[str]


def _payload_path(payload: Payload) -> str | None:
    """The file path of a payload given as a path, or None when it is bytes."""
    if isinstance(payload, bytes | bytearray | memoryview):
        return None
    path = os.fspath(payload)
    if not os.path.isfile(path):
        raise SigningError(f"cannot read {path}: no such file")
    return path


@native
def sign_detached(secret_key: SecretKey, path_or_bytes: Payload) -> bytes:
    """An armored detached signature (`-----BEGIN PGP SIGNATURE-----...`) over the payload."""
    signer = secret_key.signer()
    path = _payload_path(path_or_bytes)
    try:
        if path is None:
            return pysequoia.sign(signer, bytes(path_or_bytes),  # type: ignore[arg-type]
                                  mode=pysequoia.SignatureMode.DETACHED)
        # sign_file streams the input and can only write its result to a file.
        with tempfile.TemporaryDirectory(prefix="pyrkt-sign-") as scratch:
            out = Path(scratch, "signature.asc")
            pysequoia.sign_file(signer, path, str(out), mode=pysequoia.SignatureMode.DETACHED)
            return out.read_bytes()
    except SigningError:
        raise
    except Exception as error:
        raise SigningError(f"cannot sign with {secret_key.fingerprint}: {sequoia_reason(error)}") from error


@native
def read_signature(signature: bytes | str) -> pysequoia.Sig:
    """Parse one detached signature (armored or binary); a clear error for anything else."""
    data = signature.encode("utf-8") if isinstance(signature, str) else bytes(signature)
    if not data.strip():
        raise SigningError("not an OpenPGP signature: the signature is empty")
    try:
        return pysequoia.Sig.from_bytes(data)
    except Exception as error:
        raise SigningError(f"not an OpenPGP signature: {sequoia_reason(error)}") from error


@native
def signature_issuer(signature: bytes | str) -> str:
    """The issuer of a signature: its key fingerprint when recorded, else its long key ID (upper-case)."""
    sig = read_signature(signature)
    issuer = sig.issuer_fingerprint or sig.issuer_key_id
    if not issuer:
        raise SigningError("the signature names no issuer key")
    return issuer.upper()


def _issuer_text(sig: pysequoia.Sig) -> str:
    parts = []
    if sig.issuer_key_id:
        parts.append(f"key ID {sig.issuer_key_id.upper()}")
    if sig.issuer_fingerprint:
        parts.append(f"fingerprint {sig.issuer_fingerprint.upper()}")
    return ", ".join(parts) if parts else "an unnamed key"


def select_signers(sig: pysequoia.Sig, keys: list[PublicKey]) -> list[PublicKey]:
    """The keys holding the signature's issuer key; SigningError naming the issuer if none,
    or naming the key (or subkey) and why when it is revoked or expired."""
    issuers = {value.upper() for value in (sig.issuer_fingerprint, sig.issuer_key_id) if value}
    signers = [key for key in keys if any(key.has_component(i) for i in issuers)]
    if not signers:
        known = ", ".join(key.fingerprint for key in keys) or "none"
        raise SigningError(f"signature made by unknown key ({_issuer_text(sig)}); "
                           f"keys tried: {known}")
    usable: list[PublicKey] = []
    refusals: list[str] = []
    for key in signers:
        issuer = next(i for i in issuers if key.has_component(i))
        refusal = key.signing_refusal(issuer)
        if refusal is None:
            usable.append(key)
        else:
            refusals.append(refusal)
    if not usable:
        raise SigningError(f"signature refused: {'; '.join(refusals)}")
    return usable


@native
def verify_detached(signature: bytes | str, path_or_bytes: Payload,
                    keys: Iterable[PublicKey]) -> PublicKey:
    """The key (one of `keys`) whose valid signature `signature` is over the payload.

    Raises SigningError when the signature is unreadable, was made by none of `keys` (the message
    names the issuer's key ID and fingerprint), comes from a revoked or expired key or subkey
    (the message names which), or does not match the payload (tampered bytes). A retired
    registry key (still published, not expired) keeps verifying what it signed.
    """
    sig = read_signature(signature)
    signers = select_signers(sig, list(keys))
    path = _payload_path(path_or_bytes)

    def store(_key_ids: list[str]) -> list[pysequoia.Cert]:
        return [key.cert for key in signers]

    try:
        if path is None:
            result = pysequoia.verify(bytes(path_or_bytes), store, signature=sig)  # type: ignore[arg-type]
        else:
            result = pysequoia.verify(store=store, file=path, signature=sig)
    except Exception as error:
        raise SigningError(f"bad signature by {signers[0].describe()}: the data does not match "
                           f"the signature or the key is not valid for it "
                           f"({sequoia_reason(error)})") from error
    for valid in result.valid_sigs:
        for key in signers:
            if key.fingerprint == str(valid.certificate).upper():
                return key
    raise SigningError(f"no valid signature by {_issuer_text(sig)}")
