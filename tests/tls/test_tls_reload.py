"""A certificate swapped under a running server: new connections get the new one at once, open
connections (a keep-alive one, an in-flight download) carry on; SIGHUP (gunicorn replaces its
workers gracefully) lets an in-flight download finish too."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
import requests
from live_registry import LiveRegistry
from tls_helpers import in_netns, local_ca, served_certificate

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.slow]

NAME = "127.0.0.1/demo/big"
SIZE = 48 * 1024 * 1024


def _big_image(folder: Path) -> Path:
    from registry.aci import ImageManifest, write_aci

    rootfs = folder / "rootfs"
    rootfs.mkdir(parents=True)
    with (rootfs / "blob").open("wb") as out:
        for _ in range(SIZE // (1 << 20)):
            out.write(os.urandom(1 << 20))  # incompressible: the ACI stays ~SIZE bytes
    manifest = ImageManifest.from_dict({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": NAME,
        "labels": [{"name": "version", "value": "1.0"}, {"name": "os", "value": "linux"},
                   {"name": "arch", "value": "amd64"}]})
    out = folder / "big.aci"
    write_aci(manifest, rootfs, out, compression="none")
    return out


class SlowDownload(threading.Thread):
    """Reads an image at about 8 MiB/s, hashing what arrives."""

    def __init__(self, url: str, ca: Path) -> None:
        super().__init__(daemon=True)
        self.url, self.ca = url, ca
        self.digest: str | None = None
        self.error: BaseException | None = None
        self.started_reading = threading.Event()

    def run(self) -> None:
        try:
            hasher = hashlib.sha512()
            with requests.get(self.url, stream=True, timeout=60, verify=str(self.ca)) as answer:
                answer.raise_for_status()
                for chunk in answer.iter_content(1 << 20):
                    hasher.update(chunk)
                    self.started_reading.set()
                    time.sleep(0.12)
            self.digest = "sha512-" + hasher.hexdigest()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error
            self.started_reading.set()


def _keepalive_get(conn: ssl.SSLSocket) -> bytes:
    conn.sendall(b"GET /_health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += conn.recv(4096)
    return head.split(b"\r\n", 1)[0]


def test_swapped_certificate_and_sighup_drop_no_connection(tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    files = local_ca(tls)
    image = _big_image(tmp_path / "image")
    with image.open("rb") as handle:
        hasher = hashlib.sha512()
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    expected = "sha512-" + hasher.hexdigest()

    def scenario() -> None:
        with LiveRegistry(tmp_path / "registry", port=443, tls=(files.cert, files.key),
                          ca_bundle=files.ca, workers=2) as registry:
            with image.open("rb") as body:
                pushed = registry.api("POST", f"/repositories/{NAME}/-/images", data=body,
                                      headers={"Content-Type": "application/octet-stream"})
            assert pushed.status_code in (200, 201), pushed.text
            url = registry.url(f"/_aci/{NAME}/1.0/linux/amd64/image.aci")
            first = served_certificate()

            context = ssl.create_default_context(cafile=str(files.ca))
            kept = context.wrap_socket(socket.create_connection(("127.0.0.1", 443)),
                                       server_hostname="127.0.0.1")
            assert _keepalive_get(kept) == b"HTTP/1.1 200 OK"
            download = SlowDownload(url, files.ca)
            download.start()
            assert download.started_reading.wait(30)

            local_ca(tls)  # a new certificate (same CA) renamed over the served files
            deadline = time.monotonic() + 10
            while served_certificate()["serial"] == first["serial"]:
                assert time.monotonic() < deadline, "the new certificate was never served"
                time.sleep(0.2)
            # The connection opened before the swap goes on, with the old certificate.
            assert _keepalive_get(kept) == b"HTTP/1.1 200 OK"
            from cryptography import x509

            old = x509.load_der_x509_certificate(kept.getpeercert(binary_form=True) or b"")
            assert format(old.serial_number, "x") == first["serial"]
            kept.close()
            download.join(120)
            assert download.error is None, f"{download.error}\n{registry.log()}"
            assert download.digest == expected

            # SIGHUP: gunicorn starts new workers and lets the old ones finish their requests.
            assert registry.process is not None
            during_hup = SlowDownload(url, files.ca)
            during_hup.start()
            assert during_hup.started_reading.wait(30)
            os.kill(registry.process.pid, signal.SIGHUP)
            during_hup.join(120)
            assert during_hup.error is None, f"{during_hup.error}\n{registry.log()}"
            assert during_hup.digest == expected
            health = requests.get(registry.url("/_health"), verify=str(files.ca), timeout=30)
            assert health.status_code == 200
            assert "Handling signal: hup" in registry.log(None)

    in_netns(scenario)
