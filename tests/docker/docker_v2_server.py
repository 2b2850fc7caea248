"""A minimal Docker Registry v2 (pull side) over an OCI image layout, for tests on 127.0.0.1.

It speaks just enough of the distribution API for a client: `/v2/`, manifests by tag or
digest, blobs, and optionally the bearer-token flow (`WWW-Authenticate: Bearer realm=...`) with
a user checked on the token endpoint. Knobs let tests serve hostile answers.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class RegistryState:
    repositories: dict[str, Path]  # repository name -> OCI layout directory
    users: dict[str, str] | None = None  # set: bearer flow, token only for these users
    anonymous_pull: bool = False  # with users set: tokens also without credentials
    tokens: set[str] = field(default_factory=set)
    corrupt_blobs: set[str] = field(default_factory=set)  # digests served with wrong bytes
    oversized_manifests: bool = False
    requests: list[str] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    state: RegistryState

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        if self.state.users is None:
            return True
        header = self.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[7:] in self.state.tokens

    def _challenge(self) -> None:
        host, port = self.server.server_address[:2]
        self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {
            "WWW-Authenticate": f'Bearer realm="http://{host}:{port}/token",service="test-registry"',
            "Content-Type": "application/json"})

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.state.requests.append(self.path)
        path = self.path.split("?", 1)[0]
        if path == "/token":
            return self._token()
        if not self._authorized():
            return self._challenge()
        if path == "/v2/":
            return self._send(200, b"{}", {"Content-Type": "application/json"})
        match = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/([^/]+)", path)
        if not match or match[1] not in self.state.repositories:
            return self._send(404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}')
        layout = self.state.repositories[match[1]]
        if match[2] == "manifests":
            return self._manifest(layout, match[3])
        return self._blob(layout, match[3])

    def _token(self) -> None:
        users = self.state.users or {}
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if users.get(user) != password:
                return self._send(401, b"{}")
        elif not self.state.anonymous_pull:
            return self._send(401, b"{}")
        token = f"token-{len(self.state.tokens)}"
        self.state.tokens.add(token)
        self._send(200, json.dumps({"token": token}).encode(), {"Content-Type": "application/json"})

    def _manifest(self, layout: Path, reference: str) -> None:
        index = json.loads((layout / "index.json").read_text())
        digest, media_type = reference, None
        for descriptor in index["manifests"]:
            names = descriptor.get("annotations", {})
            if names.get("org.opencontainers.image.ref.name") == reference or \
                    descriptor["digest"] == reference:
                digest, media_type = descriptor["digest"], descriptor["mediaType"]
        blob = layout / "blobs" / digest.replace(":", "/")
        if ":" not in digest or not blob.is_file():
            return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
        body = blob.read_bytes()
        media_type = media_type or json.loads(body).get("mediaType")
        if self.state.oversized_manifests:
            body = body.rstrip()[:-1] + b',"padding":"' + b"x" * (5 * 1024 * 1024) + b'"}'
        self._send(200, body, {"Content-Type": media_type or "", "Docker-Content-Digest": digest})

    def _blob(self, layout: Path, digest: str) -> None:
        blob = layout / "blobs" / digest.replace(":", "/")
        if not blob.is_file():
            return self._send(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')
        body = blob.read_bytes()
        if digest in self.state.corrupt_blobs:
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        self._send(200, body, {"Content-Type": "application/octet-stream",
                               "Docker-Content-Digest": digest})


class V2Registry:
    """Runs the registry in a thread; `address` is `127.0.0.1:PORT`."""

    def __init__(self, state: RegistryState, tls: tuple[Path, Path] | None = None) -> None:
        handler = type("Handler", (_Handler,), {"state": state})
        self.state = state
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if tls is not None:  # (certificate, key): serve HTTPS
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> V2Registry:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), to trust through REQUESTS_CA_BUNDLE."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(
            "127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "registry.crt", directory / "registry.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
