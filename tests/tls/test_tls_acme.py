"""ACME against Debian's pebble, with real http-01 validation through the registry's plain-HTTP
listener: issuance, two hosts sharing one certificate, renewal 30 days before expiry under a
running server, and a CA refusal as one clear line (log, `serve`, `tls status`)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import requests
from live_registry import LiveRegistry
from pebble import DIRECTORY, Pebble
from tls_helpers import Client, in_netns, served_certificate

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.slow]

ACME_ARGS = ["--acme", "--acme-directory", DIRECTORY, "--acme-email", "ops@example.com"]


def _acme_registry(data: Path, pebble: Pebble, port: int = 443, **kwargs) -> LiveRegistry:  # type: ignore[no-untyped-def]
    args = [*ACME_ARGS, *kwargs.pop("extra_args", ["--http-bind", "127.0.0.1:80"])]
    return LiveRegistry(data, port=port, https=True, ca_bundle=kwargs.pop("ca_bundle", None),
                        serve_args=args, env=pebble.registry_env(kwargs.pop("interval", 2)),
                        ready_timeout=120, **kwargs)


def test_issuance_redirects_and_two_hosts_share_the_certificate(tmp_path: Path) -> None:
    def scenario() -> None:
        with Pebble(tmp_path / "pebble") as pebble:
            roots = pebble.root()
            first = _acme_registry(tmp_path / "a", pebble, ca_bundle=roots)
            with first:
                served = served_certificate()
                assert "Pebble" in served["issuer"], served
                # Plain HTTP: redirected to HTTPS, path and query kept; challenges answered.
                moved = requests.get("http://127.0.0.1/demo/app?ac-discovery=1", timeout=10,
                                     allow_redirects=False)
                assert moved.status_code == 301
                assert moved.headers["Location"] == "https://127.0.0.1/demo/app?ac-discovery=1"
                unknown = requests.get("http://127.0.0.1/.well-known/acme-challenge/nope",
                                       timeout=10, allow_redirects=False)
                assert unknown.status_code == 404
                # Clients trusting pebble's root: discovery and keys over HTTPS, no flags.
                client = Client(tmp_path / "client")
                client.domain_file("127.0.0.1", caBundle=str(roots))
                trusted = client.pyrkt("trust", "--prefix", "127.0.0.1/demo",
                                       "--skip-fingerprint-review")
                assert trusted.returncode == 0, trusted.stderr + first.log()

                # A second host on the same database serves the same certificate: no new order.
                second = _acme_registry(tmp_path / "b", pebble, port=8443, ca_bundle=roots,
                                        database_url=f"sqlite:///{tmp_path / 'a' / 'registry.db'}",
                                        initialise=False, extra_args=[])
                with second:
                    assert served_certificate(port=8443)["serial"] == served["serial"]
                    time.sleep(5)  # more than two renewal checks: nothing is due for years
                    assert served_certificate()["serial"] == served["serial"]
                    assert served_certificate(port=8443)["serial"] == served["serial"]
                status = first.cli("tls", "status").stdout
                assert f"serial {served['serial']}" in status, status
                assert "renewal from" in status and "last error" not in status, status
                assert first.log(None).count("TLS: ordering a certificate") == 1, first.log()

    in_netns(scenario)


def test_renewal_30_days_before_expiry_under_a_running_server(tmp_path: Path) -> None:
    def scenario() -> None:
        # Pebble issues for 29 days: the first certificate is already within the 30-day window,
        # so the next check (every 2 s here) renews it while the server runs.
        with Pebble(tmp_path / "pebble", validity_seconds=29 * 86400) as pebble:
            roots = pebble.root()
            with _acme_registry(tmp_path / "a", pebble, ca_bundle=roots) as registry:
                first = served_certificate()
                session = requests.Session()
                assert session.get(registry.url("/_health"), verify=str(roots),
                                   timeout=10).status_code == 200
                deadline = time.monotonic() + 60
                while served_certificate()["serial"] == first["serial"]:
                    assert time.monotonic() < deadline, registry.log()
                    time.sleep(0.5)
                assert "the certificate expires in 29.0 days (renewal 30 days before)" in \
                    registry.log(None), registry.log()
                # Verified against pebble's root, on a new connection: the renewed one.
                assert requests.get(registry.url("/_health"), verify=str(roots),
                                    timeout=10).status_code == 200

    in_netns(scenario)


def test_a_ca_refusal_is_one_clear_line(tmp_path: Path) -> None:
    def scenario() -> None:
        with Pebble(tmp_path / "pebble") as pebble:
            data = tmp_path / "registry"
            registry = _acme_registry(data, pebble, extra_args=[])  # no HTTP listener: refused
            registry.data_dir.mkdir(parents=True)
            registry.cli("init")
            served = subprocess.run(
                [registry.executable(), "serve", "--bind", "127.0.0.1:443", *ACME_ARGS],
                env=registry.environ, capture_output=True, text=True, timeout=180)
            assert served.returncode == 1, served.stdout + served.stderr
            assert "Traceback" not in served.stderr
            last = served.stderr.strip().splitlines()[-1]
            assert last.startswith(f"Error: ACME: {DIRECTORY} gave no certificate for "
                                   "127.0.0.1: validation failed: 127.0.0.1: "), last
            assert "connection" in last.lower(), last
            logged = [line for line in served.stderr.splitlines() if "[ERROR] TLS: ACME:" in line]
            assert len(logged) == 1, served.stderr
            status = registry.cli("tls", "status").stdout
            assert f"last error: {last.removeprefix('Error: ')}" in status, status

    in_netns(scenario)
