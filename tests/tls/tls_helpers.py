"""Helpers of the HTTPS tests: a private network namespace per test, certificates, clients.

Image names carry no port, so an HTTPS registry must answer on 127.0.0.1:443. Each test runs
its scenario in `in_netns(func)`: a forked child unshares a new network namespace (and mount
namespace, to give it its own /etc/hosts when asked), brings `lo` up and calls `func`. Port 443
is free there and no packet can leave it. The child's exception (its traceback) fails the test.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from components import IN_CI

from registry.server.tls.localca import (
    cert_pem,
    init_local_ca,
    issue,
    key_pem,
    make_ca,
    write_private,
)

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000

BIN = Path(sys.executable).parent


def needs_root() -> None:
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("the HTTPS tests need root (network namespaces, port 443)")
        pytest.skip("the HTTPS tests need root (network namespaces, port 443)")


def in_netns(func: Callable[[], Any], *, timeout: float = 600) -> None:
    """Run `func` in a forked child inside fresh network and mount namespaces."""
    needs_root()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read_end)
        outcome = "ok"
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(CLONE_NEWNET | CLONE_NEWNS) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET|CLONE_NEWNS)")
            # Mounts made here (a private /etc/hosts) must not propagate to the host.
            subprocess.run(["mount", "--make-rprivate", "/"], check=True)
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

            def _alarm(*_: Any) -> None:
                raise TimeoutError(f"the scenario did not finish within {timeout:.0f}s")

            signal.signal(signal.SIGALRM, _alarm)
            signal.alarm(int(timeout))
            func()
        except BaseException:  # noqa: BLE001 - everything goes back to the parent as text
            outcome = traceback.format_exc()
        try:
            os.write(write_end, outcome.encode(errors="replace"))
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    deadline = time.monotonic() + timeout + 60
    while True:
        ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            os.kill(pid, signal.SIGKILL)
            chunks.append(b"(killed: no answer from the scenario)")
            break
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    outcome = b"".join(chunks).decode(errors="replace")
    if outcome != "ok":
        pytest.fail(f"scenario in the network namespace failed:\n{outcome}", pytrace=False)


def private_hosts(folder: Path, names: dict[str, str]) -> None:
    """Inside in_netns only: /etc/hosts with `names` (name -> address) plus localhost."""
    hosts = folder / "hosts"
    hosts.write_text("127.0.0.1 localhost\n::1 localhost\n"
                     + "".join(f"{address} {name}\n" for name, address in names.items()))
    subprocess.run(["mount", "--bind", str(hosts), "/etc/hosts"], check=True)


@dataclass
class CertFiles:
    ca: Path
    cert: Path
    key: Path


def local_ca(folder: Path, names: tuple[str, ...] = ("127.0.0.1",)) -> CertFiles:
    made = init_local_ca(folder, names)
    return CertFiles(made.ca_file, made.cert_file, made.key_file)


def certificate_from(ca_folder: Path, out: Path, names: list[str], *, days: float = 30,
                     start_days_ago: float = 0) -> CertFiles:
    """Another certificate signed by the CA in `ca_folder` (wrong names, odd dates)."""
    from registry.server.tls.certs import load_chain, load_key

    ca_cert = load_chain((ca_folder / "ca.pem").read_bytes())[0]
    ca_key = load_key((ca_folder / "ca-key.pem").read_bytes())
    start = datetime.now(UTC) - timedelta(days=start_days_ago)
    cert, key = issue(ca_cert, ca_key, names, not_before=start, not_after=start + timedelta(days=days))  # type: ignore[arg-type]
    out.mkdir(parents=True, exist_ok=True)
    write_private(out / "key.pem", key_pem(key))
    write_private(out / "cert.pem", cert_pem(cert), 0o644)
    return CertFiles(ca_folder / "ca.pem", out / "cert.pem", out / "key.pem")


def other_ca(folder: Path, names: list[str]) -> CertFiles:
    """A certificate from a CA nobody trusts."""
    ca_cert, ca_key = make_ca("some other CA")
    cert, key = issue(ca_cert, ca_key, names)
    folder.mkdir(parents=True, exist_ok=True)
    write_private(folder / "ca.pem", cert_pem(ca_cert), 0o644)
    write_private(folder / "key.pem", key_pem(key))
    write_private(folder / "cert.pem", cert_pem(cert), 0o644)
    return CertFiles(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")


def served_certificate(host: str = "127.0.0.1", port: int = 443) -> dict[str, Any]:
    """What the server presents on a NEW connection (not verified): serial and names."""
    import socket
    import ssl

    from cryptography import x509

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=None) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    return {"serial": format(cert.serial_number, "x"), "not_after": cert.not_valid_after_utc,
            "issuer": cert.issuer.rfc4514_string()}


class Client:
    """The real CLIs (`pyrkt`, `docker2aci`) as subprocesses with their own store and config."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = root / "store"
        self.local = root / "config" / "local"
        self.user = root / "config" / "user"
        for folder in (self.store, self.local, self.user):
            folder.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("PYRKT_", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                                         "SSL_CERT"))}
        self.env["PATH"] = f"{BIN}:{self.env.get('PATH', '')}"
        (root / "config" / "system").mkdir(parents=True, exist_ok=True)
        # `pyrkt push` reads the client configuration from the environment (it has no --dir).
        self.env.update(PYRKT_SYSTEM_CONFIG=str(root / "config" / "system"),
                        PYRKT_LOCAL_CONFIG=str(self.local), PYRKT_USER_CONFIG=str(self.user))

    def flags(self) -> list[str]:
        return ["--dir", str(self.store), "--local-config", str(self.local),
                "--user-config", str(self.user)]

    def domain_file(self, domain: str, **settings: Any) -> Path:
        folder = self.local / "domains.d"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{domain}.json"
        path.write_text(json.dumps({"pyrktKind": "domain", "pyrktVersion": "v1",
                                    "domains": [domain], **settings}))
        return path

    def pyrkt(self, command: str, *args: str, input: str | None = None, timeout: float = 300,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        config = self.flags() if command in ("fetch", "trust", "run", "image") else []
        return subprocess.run([str(BIN / "pyrkt"), command, *config, *args], text=True,
                              capture_output=True, input=input, timeout=timeout,
                              env={**self.env, **(env or {})})

    def tool(self, name: str, *args: str, timeout: float = 300,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / name), *args], text=True, capture_output=True,
                              timeout=timeout, env={**self.env, **(env or {})})


def one_error_line(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """The command failed with exactly one `pyrkt: ...` line holding `expected`, no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines()
              if line.startswith(("pyrkt: ", "Error: ")) and "warning" not in line
              and not line.startswith("pyrkt: searching") and not line.startswith("pyrkt: fetching")
              and not line.startswith("pyrkt: signature")]
    assert errors, result.stderr
    line = errors[-1]
    for text in expected:
        assert text in line, f"{text!r} not in the error line:\n{line}\n(all output: {result.stderr})"
    return line


def hello_image(out: Path, name: str, program: Path, version: str = "1.0") -> Path:
    """An ACI running a static program (tests/conftest.py's static_hello)."""
    import shutil

    from registry.aci import ImageManifest, write_aci

    rootfs = out.parent / f"{out.stem}-rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    (rootfs / "app").mkdir(parents=True)
    shutil.copy2(program, rootfs / "app" / "hello")
    manifest = {
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
        "labels": [{"name": "version", "value": version}, {"name": "os", "value": "linux"},
                   {"name": "arch", "value": "amd64"}],
        "app": {"exec": ["/app/hello"], "user": "0", "group": "0"},
    }
    write_aci(ImageManifest.from_dict(manifest), rootfs, out)
    return out
