"""Debian's `pebble` (Let's Encrypt's test CA) on 127.0.0.1 inside a test's network namespace.

Its own HTTPS listener gets a certificate from a throwaway local CA (`ca` is what the
registry's ACME client trusts, PYRKT_REGISTRY_ACME_CA_BUNDLE). Validation is real: pebble
asks http://<domain>:80/.well-known/acme-challenge/... — the registry's --http-bind listener.
`root()` is pebble's issuing root (new every run): what clients trust for the issued
certificates.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from tls_helpers import IN_CI, local_ca

DIRECTORY = "https://127.0.0.1:14000/dir"


class Pebble:
    def __init__(self, folder: Path, *, validity_seconds: int | None = None) -> None:
        self.folder = folder
        self.validity = validity_seconds
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "pebble.log"
        self.ca: Path | None = None

    def __enter__(self) -> Pebble:
        binary = shutil.which("pebble")
        if binary is None:
            message = "Debian's pebble is not installed (.ci/run installs it)"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
        self.folder.mkdir(parents=True, exist_ok=True)
        own = local_ca(self.folder / "listener", ("127.0.0.1",))
        self.ca = own.ca
        settings: dict[str, object] = {
            "listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
            "certificate": str(own.cert), "privateKey": str(own.key),
            "httpPort": 80, "tlsPort": 5001, "ocspResponderURL": "",
            "externalAccountBindingRequired": False}
        if self.validity:
            settings["certificateValidityPeriod"] = self.validity
        config = self.folder / "pebble-config.json"
        config.write_text(json.dumps({"pebble": settings}))
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0",
                   PEBBLE_AUTHZREUSE="0")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen([binary, "-config", str(config), "-strict=false"],
                                            env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pebble exited:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", 14000), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"pebble did not start:\n{self.log()}")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def root(self) -> Path:
        """Pebble's root (and intermediate) certificates, to verify what it issued."""
        assert self.ca is not None
        pems = [requests.get(f"https://127.0.0.1:15000/{kind}/0", verify=str(self.ca),
                             timeout=10).text for kind in ("roots", "intermediates")]
        target = self.folder / "issuer-roots.pem"
        target.write_text("".join(pems))
        return target

    def registry_env(self, interval: int = 2) -> dict[str, str]:
        assert self.ca is not None
        return {"PYRKT_REGISTRY_ACME_CA_BUNDLE": str(self.ca),
                "PYRKT_REGISTRY_ACME_CHECK_INTERVAL": str(interval)}
