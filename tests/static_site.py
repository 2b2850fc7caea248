"""A static web site on 127.0.0.1 for tests: a folder served by Python's http.server.

Nothing of pyrkt is involved, so a client can be checked against the appc spec rather than
against our own server. Usage:

    with StaticSite(folder) as site:                 # plain HTTP on a free port
        site.url, site.port, site.requests
    ca = make_tls_files(tmp_path)                    # a private CA and a 127.0.0.1/localhost cert
    with StaticSite(folder, tls=ca) as site:         # HTTPS; trust ca.ca_path on the client side
        ...
    StaticSite(folder, redirects={"/old": "/new"})   # 302 (query kept) for exact paths
    StaticSite(folder, statuses={"/app": 403})       # force a status for exact paths

A directory is answered by its index.html (http.server redirects `/dir` to `/dir/` first, keeping
the query). `site.requests` lists every request as (method, path-with-query) in order.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class TLSFiles:
    ca_path: Path  # the CA certificate (PEM): what a client trusts
    cert_path: Path  # the server certificate for 127.0.0.1 and localhost (PEM)
    key_path: Path  # its private key (PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_tls_files(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> TLSFiles:
    """A fresh private CA and a server certificate it signed for `hosts` (IPs or DNS names)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("pyrkt test CA")).issuer_name(_name("pyrkt test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0])).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TLSFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    files.ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    return files


class _Handler(SimpleHTTPRequestHandler):
    site: StaticSite

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass  # keep test output clean; `site.requests` records what matters

    def _intercept(self) -> bool:
        self.site.requests.append((self.command, self.path))
        parts = urlsplit(self.path)
        status = self.site.statuses.get(parts.path)
        if status is not None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True
        target = self.site.redirects.get(parts.path)
        if target is not None:
            if parts.query and "?" not in target:
                target += "?" + parts.query
            self.send_response(self.site.redirect_status)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True
        return False

    def do_GET(self) -> None:
        if not self._intercept():
            super().do_GET()

    def do_HEAD(self) -> None:
        if not self._intercept():
            super().do_HEAD()


class StaticSite:
    """Serve `root` on 127.0.0.1 (a free port) in a background thread; use as a context manager."""

    def __init__(self, root: Path | str, *, tls: TLSFiles | None = None,
                 redirects: dict[str, str] | None = None, statuses: dict[str, int] | None = None,
                 redirect_status: int = 302, port: int = 0) -> None:
        self.root = Path(root)
        self.tls = tls
        self.redirects = dict(redirects or {})
        self.statuses = dict(statuses or {})
        self.redirect_status = redirect_status
        self.requests: list[tuple[str, str]] = []
        handler = type("Handler", (_Handler,), {"site": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), partial(handler, directory=str(self.root)))
        self._server.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert_path, tls.key_path)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def paths_requested(self) -> list[str]:
        return [path for _, path in self.requests]

    def start(self) -> StaticSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> StaticSite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
