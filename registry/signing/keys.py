"""OpenPGP keys: generation, loading and the facts callers show (fingerprint, user IDs, dates).

`PublicKey` wraps a pysequoia `Cert`, `SecretKey` a pysequoia `Tsk`. Fingerprints are upper-case
hex (as gpg and rkt's trust store print them). A key generated here has a certification-only
primary key plus a signing subkey and an encryption subkey, so a signature names the *subkey*
as its issuer; `PublicKey.key_fingerprints` lists every component so lookups by issuer work.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import pysequoia
from pysequoia.packet import PacketPile, Tag

from .errors import SigningError, sequoia_reason

CIPHER_SUITES: dict[str, pysequoia.CipherSuite] = {
    # RSA 4096 is the default: gpg and the Go openpgp package of rkt-era verifiers accept it.
    "rsa4k": pysequoia.CipherSuite.RSA4k,
    "rsa3k": pysequoia.CipherSuite.RSA3k,
    "rsa2k": pysequoia.CipherSuite.RSA2k,
    "cv25519": pysequoia.CipherSuite.Cv25519,
    "p256": pysequoia.CipherSuite.P256,
    "p384": pysequoia.CipherSuite.P384,
    "p521": pysequoia.CipherSuite.P521,
}

_KEY_TAGS = (Tag.PublicKey, Tag.PublicSubkey, Tag.SecretKey, Tag.SecretSubkey)


def _as_bytes(data: bytes | str) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise SigningError(f"expected key data as bytes or str, got {type(data).__name__}")


@dataclass(frozen=True)
class PublicKey:
    """A public OpenPGP certificate (primary key, user IDs, subkeys)."""

    cert: pysequoia.Cert = field(repr=False, compare=False)
    fingerprint: str
    user_ids: tuple[str, ...]
    created: datetime | None
    expires: datetime | None
    revoked: bool
    key_fingerprints: tuple[str, ...]  # primary first, then subkeys; upper-case hex

    @classmethod
    def from_cert(cls, cert: pysequoia.Cert) -> PublicKey:
        components: list[str] = []
        created: datetime | None = None
        for packet in PacketPile.from_bytes(bytes(cert)):
            if packet.tag in _KEY_TAGS and packet.fingerprint:
                if not components:
                    created = packet.key_created
                components.append(packet.fingerprint.upper())
        return cls(
            cert=cert,
            fingerprint=cert.fingerprint.upper(),
            user_ids=tuple(str(uid) for uid in cert.user_ids),
            created=created,
            expires=cert.expiration,
            revoked=cert.is_revoked,
            key_fingerprints=tuple(components),
        )

    @property
    def key_id(self) -> str:
        """The long key ID (last 16 hex digits of the fingerprint), as gpg shows it."""
        return self.fingerprint[-16:]

    def has_component(self, fingerprint_or_key_id: str) -> bool:
        """Whether the primary key or a subkey has this fingerprint or (long) key ID."""
        wanted = fingerprint_or_key_id.upper()
        return any(fpr == wanted or (len(wanted) >= 16 and fpr.endswith(wanted))
                   for fpr in self.key_fingerprints)

    def armored(self) -> str:
        """The ASCII-armored public key block (never any secret material)."""
        return str(self.cert)

    def describe(self) -> str:
        """One line for humans: fingerprint and the first user ID."""
        who = self.user_ids[0] if self.user_ids else "(no user ID)"
        return f"{self.fingerprint} {who}"


class SecretKey:
    """A secret OpenPGP key able to make signatures."""

    def __init__(self, tsk: pysequoia.Tsk, password: str | None = None) -> None:
        self._tsk = tsk
        self._password = password
        self.public_key = PublicKey.from_cert(tsk.extract_certificate())
        if not str(tsk).startswith("-----BEGIN PGP PRIVATE KEY BLOCK-----"):
            raise SigningError(f"key {self.fingerprint} holds no secret key material")

    @property
    def fingerprint(self) -> str:
        return self.public_key.fingerprint

    @property
    def user_ids(self) -> tuple[str, ...]:
        return self.public_key.user_ids

    def armored_public(self) -> str:
        return self.public_key.armored()

    def armored_secret(self) -> str:
        return str(self._tsk)

    def signer(self) -> pysequoia.PySigner:
        """pysequoia's signing handle (the signing subkey, unlocked with the password if any)."""
        try:
            return self._tsk.signer(self._password)
        except Exception as error:
            raise SigningError(f"key {self.fingerprint} cannot sign: {sequoia_reason(error)}") from error

    def public_key_expiring(self, when: datetime) -> PublicKey:
        """The public key re-certified to expire at `when` (e.g. when retiring it).

        Signatures made before `when` keep verifying; the key can no longer make new valid ones
        after it. Publish the returned key in place of the old one.
        """
        try:
            cert = self.public_key.cert.set_expiration(when, self._tsk.certifier(self._password))
        except Exception as error:
            raise SigningError(f"cannot set the expiry of {self.fingerprint}: "
                               f"{sequoia_reason(error)}") from error
        return PublicKey.from_cert(cert)

    def __repr__(self) -> str:
        return f"SecretKey({self.public_key.describe()!r})"


def generate_key(user_id: str, *, cipher: str = "rsa4k", validity_seconds: int | None = None) -> SecretKey:
    """A new key pair; RSA 4096 by default (about 5-10 s on a small machine: cache it in tests).

    `validity_seconds` makes the key expire that long after its creation (default: never).
    """
    if not user_id or not user_id.strip():
        raise SigningError("a key needs a user ID, e.g. 'Example Registry <registry@example.com>'")
    suite = CIPHER_SUITES.get(cipher.lower())
    if suite is None:
        raise SigningError(f"unknown cipher {cipher!r}; choose one of {', '.join(CIPHER_SUITES)}")
    try:
        tsk = pysequoia.Tsk.generate(user_id, cipher_suite=suite, validity_seconds=validity_seconds)
    except Exception as error:
        raise SigningError(f"cannot generate a key: {sequoia_reason(error)}") from error
    return SecretKey(tsk)


def load_secret_key(armored: bytes | str, password: str | None = None) -> SecretKey:
    """Parse one (armored or binary) transferable secret key."""
    data = _as_bytes(armored)
    try:
        tsk = pysequoia.Tsk.from_bytes(data)
    except Exception as error:
        raise SigningError(f"not an OpenPGP secret key: {sequoia_reason(error)}") from error
    return SecretKey(tsk, password)


def read_public_keys(data: bytes | str) -> list[PublicKey]:
    """Every certificate in an armored or binary key block (one or several keys).

    Secret material in the input is ignored: only the public parts are kept.
    """
    raw = _as_bytes(data)
    if not raw.strip():
        raise SigningError("no OpenPGP public key found: the input is empty")
    try:
        certs = pysequoia.Cert.split_bytes(raw)
    except Exception as error:
        raise SigningError(f"not an OpenPGP public key: {sequoia_reason(error)}") from error
    if not certs:
        raise SigningError("no OpenPGP public key found in the input")
    # Drop secret parts: re-parse the public serialization so no secret material travels on.
    return [PublicKey.from_cert(pysequoia.Cert.from_bytes(str(cert).encode())) for cert in certs]


def export_public_keys(keys: Iterable[PublicKey]) -> str:
    """All keys in ONE armored block.

    Go's openpgp.ReadArmoredKeyRing (rkt, actool) reads only the first armor block of a file, so
    several keys served at one pubkeys URL must share a block rather than be concatenated.
    """
    blob = b"".join(bytes(key.cert) for key in keys)
    if not blob:
        raise SigningError("no keys to export")
    return pysequoia.armor(blob, pysequoia.ArmorKind.PublicKey)
