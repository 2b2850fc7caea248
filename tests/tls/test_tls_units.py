"""The HTTPS parts on their own: TLS failures in words, when a certificate is due, where plain
HTTP is redirected, the settings' rules, the renewal lock, and the reloading SSL context."""

from __future__ import annotations

import ssl
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from live_registry import free_port
from tls_helpers import certificate_from, local_ca, other_ca

from registry.discovery import tls_fix, tls_problem
from registry.server.config import ConfigError, RegistryConfig
from registry.server.tls import manager, store
from registry.server.tls.context import reloading_context, server_context
from registry.server.tls.sidecar import https_location


def _ssl_error(text: str) -> requests.exceptions.SSLError:
    return requests.exceptions.SSLError(
        "HTTPSConnectionPool(host='registry.test', port=443): Max retries exceeded with url: / "
        f"(Caused by SSLError(SSLError(1, '{text} (_ssl.c:1006)')))")


@pytest.mark.parametrize(("text", "kind", "words"), [
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer "
     "certificate", "unknown-ca", "signed by an unknown CA"),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate",
     "unknown-ca", "signed by an unknown CA"),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch, "
     "certificate is not valid for 'registry.test'.", "wrong-name", "not valid for that name"),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired",
     "expired", "has expired"),
    ("[SSL: WRONG_VERSION_NUMBER] wrong version number", "plain-http", "answers plain HTTP"),
    ("[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure", "handshake",
     "refused the TLS handshake"),
])
def test_tls_failures_in_words(text: str, kind: str, words: str) -> None:
    problem = tls_problem(_ssl_error(text))
    assert problem.kind == kind
    assert words in problem.text and "registry.test" in problem.text
    assert "\n" not in problem.text and "_ssl.c" not in problem.text
    fix = tls_fix(problem.kind, host="registry.test")
    assert fix and "\n" not in fix


def test_the_fix_names_the_callers_flags() -> None:
    assert "--ca-bundle FILE" in tls_fix("unknown-ca") and "caBundle" in tls_fix("unknown-ca")
    assert "--insecure-skip-tls-verify" in tls_fix("expired",
                                                   insecure_flag="--insecure-skip-tls-verify")
    assert "--insecure" in tls_fix("plain-http", http_flag="--insecure")


def _stored(folder: Path, names: list[str], days: float) -> dict[str, str]:
    made = certificate_from(folder / "ca", folder / f"c{days}", names, days=days)
    return {"chain": made.cert.read_text(), "key": made.key.read_text()}


def test_a_certificate_is_due_30_days_before_expiry(tmp_path: Path) -> None:
    local_ca(tmp_path / "ca")
    assert manager.due_reason(None, ("registry.test",), 30) == "no certificate yet"
    fresh = _stored(tmp_path, ["registry.test"], 31)
    assert manager.due_reason(fresh, ("registry.test",), 30) is None
    due = manager.due_reason(_stored(tmp_path, ["registry.test"], 29), ("registry.test",), 30)
    assert due is not None and "expires in 29.0 days" in due
    assert "does not cover other.test" in (
        manager.due_reason(fresh, ("registry.test", "other.test"), 30) or "")


def test_plain_http_is_redirected_to_https_without_an_open_redirect() -> None:
    config = RegistryConfig.load({}, base_url="https://registry.test",
                                 domains=("registry.test", "example.test"))
    assert https_location(config, "example.test", "/a?ac-discovery=1") == \
        "https://example.test/a?ac-discovery=1"
    assert https_location(config, "evil.test:80", "/a") == "https://registry.test/a"
    on_port = RegistryConfig.load({}, base_url="https://registry.test:8443")
    assert https_location(on_port, "registry.test", "/") == "https://registry.test:8443/"


@pytest.mark.parametrize(("settings", "message"), [
    ({"tls_key": "/k.pem"}, "tls_key) is set without tls_cert"),
    ({"tls_cert": "/c.pem", "acme": True}, "acme and tls_cert exclude each other"),
    ({"acme_directory": "http://ca.test/dir"}, "must be an https:// URL"),
    ({"http_bind": "nowhere"}, "is not HOST:PORT"),
])
def test_tls_settings_are_checked(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RegistryConfig.load({}, **settings)


def test_the_renewal_lock_is_held_by_one_host_and_taken_over_when_stale(tmp_path: Path) -> None:
    from registry.server.db import make_engine, make_session_factory, upgrade_schema

    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade_schema(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    try:
        with sessions() as one, sessions() as two:
            assert store.acquire_lock(one, "a", timedelta(minutes=10))
            assert not store.acquire_lock(two, "b", timedelta(minutes=10))
            assert store.acquire_lock(two, "b", timedelta(seconds=0))  # a died: b takes over
            store.release_lock(one, "a")  # not a's any more: nothing happens
            assert store.get(two, store.LOCK) == "b"
            store.release_lock(two, "b")
            assert store.get(two, store.LOCK) is None
    finally:
        engine.dispose()


def test_the_context_follows_the_files_and_survives_a_half_swap(tmp_path: Path) -> None:
    files = local_ca(tmp_path / "tls")
    build = lambda: server_context(str(files.cert), str(files.key))  # noqa: E731
    first = reloading_context(str(files.cert), str(files.key), build)
    assert reloading_context(str(files.cert), str(files.key), build) is first
    stranger = other_ca(tmp_path / "other", ["127.0.0.1"])
    files.cert.write_bytes(stranger.cert.read_bytes())  # the new cert, still the old key
    assert reloading_context(str(files.cert), str(files.key), build) is first
    files.key.write_bytes(stranger.key.read_bytes())  # now the pair matches again
    # The same context object (a gevent worker holds it for good), now with the new pair.
    assert reloading_context(str(files.cert), str(files.key), build) is first
    assert isinstance(first, ssl.SSLContext)


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "registry.cli.registry", "--data-dir",
                           str(tmp_path / "data"), "serve", "--bind",
                           f"127.0.0.1:{free_port()}", *args],
                          capture_output=True, text=True, timeout=120)


def test_serve_refuses_unusable_certificate_files_in_one_line(tmp_path: Path) -> None:
    import socket

    files = local_ca(tmp_path / "tls")
    stranger = other_ca(tmp_path / "other", ["127.0.0.1"])
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    busy_port = busy.getsockname()[1]
    for args, words in (
            (["--tls-cert", str(tmp_path / "missing.pem")], "cannot read"),
            (["--tls-cert", str(files.cert), "--tls-key", str(stranger.key)],
             "does not belong to the certificate"),
            (["--tls-cert", str(files.key), "--tls-key", str(files.key)], "no PEM certificate"),
            (["--tls-cert", str(files.cert)], "not an unencrypted PEM private key"),
            (["--tls-cert", str(files.cert), "--tls-key", str(files.key), "--http-bind",
              f"127.0.0.1:{busy_port}"], "in use"),
            (["--http-bind", f"127.0.0.1:{free_port()}"], "give --tls-cert or --acme")):
        result = _serve(tmp_path, *args)
        assert result.returncode != 0, result.stdout
        assert "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
        assert len(errors) == 1 and words in errors[0], result.stderr
    busy.close()
    assert not (tmp_path / "data").exists(), "nothing initialised for a server that never ran"


def test_expiry_dates_come_from_the_certificate(tmp_path: Path) -> None:
    from registry.server.tls.certs import file_info

    local_ca(tmp_path / "ca")
    made = certificate_from(tmp_path / "ca", tmp_path / "c", ["a.test", "127.0.0.2"], days=10)
    found = file_info(made.cert)
    assert found.names == ("a.test", "127.0.0.2")
    assert abs(found.not_after - (datetime.now(UTC) + timedelta(days=10))) < timedelta(minutes=2)
    assert found.covers(("a.test",)) and not found.covers(("b.test",))
