"""Reading certificates: the names and dates a status line or a check needs."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from .errors import CertificateError


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    issuer: str
    names: tuple[str, ...]      # DNS names and IP addresses of subjectAltName
    not_before: datetime
    not_after: datetime
    serial: str
    fingerprint: str            # SHA-256 of the leaf, hex

    def days_left(self, now: datetime | None = None) -> float:
        return (self.not_after - (now or datetime.now(UTC))).total_seconds() / 86400

    def covers(self, domains: tuple[str, ...] | list[str]) -> bool:
        """Whether every domain is one of the certificate's names (no wildcard logic needed:
        the registry asks for exact names)."""
        mine = {n.lower() for n in self.names}
        return all(d.lower() in mine for d in domains)

    def summary(self) -> str:
        return (f"{', '.join(self.names) or self.subject} (issuer {self.issuer}), valid until "
                f"{self.not_after:%Y-%m-%d %H:%M} UTC, serial {self.serial}")


def load_chain(pem: bytes, source: str = "certificate") -> list[x509.Certificate]:
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError:
        chain = []
    if not chain:
        raise CertificateError(f"{source}: no PEM certificate in it")
    return chain


def info(cert: x509.Certificate) -> CertificateInfo:
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += san.get_values_for_type(x509.DNSName)
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(), issuer=_common_name(cert.issuer),
        names=tuple(names), not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc, serial=format(cert.serial_number, "x"),
        fingerprint=cert.fingerprint(hashes.SHA256()).hex())


def _common_name(name: x509.Name) -> str:
    found = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(found[0].value) if found else name.rfc4514_string()


def file_info(path: Path) -> CertificateInfo:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CertificateError(f"cannot read certificate {path}: {error.strerror}") from None
    return info(load_chain(data, str(path))[0])


def load_key(pem: bytes, source: str = "key") -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise CertificateError(f"{source}: not an unencrypted PEM private key ({error})") from None


def check_pair(cert_path: Path, key_path: Path | None) -> CertificateInfo:
    """The certificate's info once cert and key are readable and belong together."""
    try:
        cert_pem = cert_path.read_bytes()
        key_pem = key_path.read_bytes() if key_path else cert_pem
    except OSError as error:
        raise CertificateError(f"cannot read {error.filename}: {error.strerror}") from None
    leaf = load_chain(cert_pem, str(cert_path))[0]
    key = load_key(key_pem, str(key_path or cert_path))
    public = getattr(key, "public_key", None)
    if public is None or public().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            leaf.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo):
        raise CertificateError(f"the key {key_path or cert_path} does not belong to the "
                               f"certificate {cert_path}")
    return info(leaf)


def san_entry(name: str) -> x509.GeneralName:
    """A subjectAltName for a domain or an IP address (registries on 127.0.0.1 name images so)."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)
