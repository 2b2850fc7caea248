"""A private CA for trying the registry out over HTTPS (`pyrkt-registry tls init`).

The CA is made once and kept (clients that trust it go on trusting it); the server
certificate is made again each time, for the domains hosted now. Keys are ECDSA P-256: small,
fast handshakes, accepted by every client the registry works with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .certs import load_chain, load_key, san_entry

CA_DAYS = 3650
# Browsers refuse server certificates valid for longer than 398 days.
SERVER_DAYS = 397


@dataclass(frozen=True)
class LocalCA:
    directory: Path
    ca_created: bool

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def cert_file(self) -> Path:
        return self.directory / "cert.pem"

    @property
    def key_file(self) -> Path:
        return self.directory / "key.pem"


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_ca(common_name: str, days: int = CA_DAYS) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def issue(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, names: list[str] | tuple[str, ...],
          *, not_before: datetime | None = None, not_after: datetime | None = None,
          ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A server certificate for `names` (DNS names or IP addresses) signed by the CA."""
    if not names:
        raise ValueError("a certificate needs at least one name")
    key = new_key()
    start = not_before or datetime.now(UTC) - timedelta(minutes=5)
    end = not_after or start + timedelta(days=SERVER_DAYS)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([san_entry(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def cert_pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write through a temporary name and rename: a reader never sees half a file, and a key
    is never readable by others, not even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def init_local_ca(directory: Path, domains: tuple[str, ...] | list[str]) -> LocalCA:
    """Make (or keep) the CA in `directory` and a fresh server certificate for `domains`."""
    ca_path, ca_key_path = directory / "ca.pem", directory / "ca-key.pem"
    created = False
    if ca_path.is_file() and ca_key_path.is_file():
        ca_cert = load_chain(ca_path.read_bytes(), str(ca_path))[0]
        ca_key = load_key(ca_key_path.read_bytes(), str(ca_key_path))
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{ca_key_path}: not the ECDSA key `tls init` makes")
    else:
        ca_cert, ca_key = make_ca(f"pyrkt local CA ({domains[0]})")
        write_private(ca_key_path, key_pem(ca_key))
        write_private(ca_path, cert_pem(ca_cert), 0o644)
        created = True
    cert, key = issue(ca_cert, ca_key, list(domains))
    # The key first: a server re-reading the pair between the two renames sees a mismatch and
    # keeps its previous certificate (see context.py) rather than serving a broken pair.
    write_private(directory / "key.pem", key_pem(key))
    write_private(directory / "cert.pem", cert_pem(cert), 0o644)
    return LocalCA(directory, created)


def served_local_ca(data_dir: Path, tls_cert: Path | None) -> Path | None:
    """The CA of `tls init` when the certificate served is the one it made (clients then need
    that CA: `pyrkt --ca-bundle`, a domains.d caBundle, docker's certs.d), else None."""
    directory = data_dir / "tls"
    if tls_cert is not None and Path(tls_cert).absolute() == (directory / "cert.pem").absolute() \
            and (directory / "ca.pem").is_file():
        return (directory / "ca.pem").absolute()
    return None
