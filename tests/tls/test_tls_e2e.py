"""The secure default path: an HTTPS registry on 127.0.0.1:443 and the real clients with no
--port and no insecure option — push, trust by prefix (keys found by discovery over HTTPS),
fetch by plain name, run; refused without the CA, with a wrong-name, an expired certificate,
plain HTTP on 443 and a refused handshake; HSTS and the Secure session cookie."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from live_registry import LiveRegistry
from tls_helpers import (
    Client,
    certificate_from,
    hello_image,
    in_netns,
    one_error_line,
    other_ca,
)

from registry.server.tls.context import WATCH_INTERVAL

pytestmark = [pytest.mark.e2e, pytest.mark.root]

PREFIX = "127.0.0.1/demo"
NAME = f"{PREFIX}/hello"


def collect(client: Client) -> None:
    """The client's exited pods collected (their cgroups are the host's until then)."""
    collected = client.pyrkt("gc", "--dir", str(client.store), "--grace-period=0s")
    assert collected.returncode == 0, collected.stderr
    assert not list((client.store / "pods").glob("*/*")), collected.stdout


def _push(client: Client, registry: LiveRegistry, image: Path, *flags: str) -> None:
    pushed = client.pyrkt("push", str(image), "--registry", registry.base_url,
                          "--token", registry.token or "", *flags)
    assert pushed.returncode == 0, pushed.stderr + registry.log()
    assert f"pushed {NAME}:1.0" in pushed.stdout, pushed.stdout


def test_push_trust_fetch_run_over_https_with_no_insecure_option(tmp_path: Path,
                                                                 static_hello: Path) -> None:
    def scenario() -> None:
        data = tmp_path / "registry"
        data.mkdir()
        # `pyrkt-registry tls init`, as the README does it.
        init = subprocess.run(["pyrkt-registry", "--data-dir", str(data), "tls", "init"],
                              capture_output=True, text=True, timeout=60)
        assert init.returncode == 0, init.stderr
        tls = data / "tls"
        assert '"caBundle": "%s"' % (tls / "ca.pem") in init.stdout
        with LiveRegistry(data, port=443, tls=(tls / "cert.pem", tls / "key.pem"),
                          ca_bundle=tls / "ca.pem") as registry:
            assert registry.base_url == "https://127.0.0.1"
            client = Client(tmp_path / "client")
            image = hello_image(tmp_path / "hello.aci", NAME, static_hello)
            _push(client, registry, image, "--ca-bundle", str(tls / "ca.pem"))

            # Without the CA: every command refuses, in one line naming the fix.
            line = one_error_line(client.pyrkt("trust", "--prefix", PREFIX,
                                               "--skip-fingerprint-review"),
                                  "unknown CA", "--ca-bundle", "caBundle")
            assert "127.0.0.1:443" in line
            one_error_line(client.pyrkt("fetch", f"{NAME}:1.0"), "unknown CA", "--ca-bundle")
            one_error_line(client.pyrkt("push", str(image), "--registry", registry.base_url,
                                        "--token", registry.token or ""),
                           "unknown CA", "--ca-bundle")
            assert not list((client.store).glob("**/*.aci"))

            # --ca-bundle: trust by prefix (keys by discovery over HTTPS), fetch by plain name.
            ca = ("--ca-bundle", str(tls / "ca.pem"))
            trusted = client.pyrkt("trust", *ca, "--prefix", PREFIX, "--skip-fingerprint-review")
            assert trusted.returncode == 0, trusted.stderr
            assert "https://127.0.0.1/_aci/pubkeys" in trusted.stderr + trusted.stdout
            fetched = client.pyrkt("fetch", *ca, "--full", f"{NAME}:1.0")
            assert fetched.returncode == 0, fetched.stderr + registry.log()
            assert fetched.stdout.strip().startswith("sha512-")
            assert "signature verified" in fetched.stderr
            ran = client.pyrkt("run", *ca, "--pull-policy=update", "--stage1=builtin",
                               f"{NAME}:1.0")
            assert ran.returncode == 0, ran.stderr
            assert "Hello from pyrkt" in ran.stdout
            collect(client)
            # A fresh client with the domains.d caBundle instead: no option at all.
            client = Client(tmp_path / "client-with-domains-d")
            client.domain_file("127.0.0.1", caBundle=str(tls / "ca.pem"))
            trusted = client.pyrkt("trust", "--prefix", PREFIX, "--skip-fingerprint-review")
            assert trusted.returncode == 0, trusted.stderr
            ran = client.pyrkt("run", "--stage1=builtin", f"{NAME}:1.0")  # fetches, then runs
            assert ran.returncode == 0, ran.stderr
            assert "Hello from pyrkt" in ran.stdout and "signature verified" in ran.stderr
            collect(client)
            fetched = client.pyrkt("fetch", f"{NAME}:1.0")
            assert fetched.returncode == 0, fetched.stderr
            # The push with the domain's caBundle and no flag at all.
            again = client.pyrkt("push", str(image), "--registry", registry.base_url,
                                 "--token", registry.token or "")
            assert again.returncode == 0 and "unchanged" in again.stdout, again.stderr

            # HSTS on HTTPS, and the session cookie is Secure.
            page = requests.get(registry.url("/_ui/login"), verify=str(tls / "ca.pem"),
                                timeout=30)
            assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
            login = requests.Session()
            ca = str(tls / "ca.pem")  # per request: REQUESTS_CA_BUNDLE beats Session.verify
            form = login.get(registry.url("/_ui/login"), timeout=30, verify=ca)
            csrf = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            # As a browser posts the form: with the page's Origin (checked beside the token).
            answer = login.post(registry.url("/_ui/login"), allow_redirects=False, timeout=30,
                                verify=ca, headers={"Origin": registry.url("").rstrip("/")},
                                data={"username": "admin", "password": registry.admin_password,
                                      "csrf_token": csrf})
            assert answer.status_code in (302, 303), answer.text[:500]
            cookie = answer.headers["Set-Cookie"]
            assert "pyrkt_session=" in cookie and "Secure" in cookie, cookie

    in_netns(scenario)


def test_refused_with_an_unknown_ca_a_wrong_name_and_an_expired_certificate(
        tmp_path: Path, static_hello: Path) -> None:
    from tls_helpers import local_ca, served_certificate

    trusted = local_ca(tmp_path / "ca")  # what the client trusts
    stranger = other_ca(tmp_path / "stranger", ["127.0.0.1"])
    wrong = certificate_from(tmp_path / "ca", tmp_path / "wrong", ["registry.other.test"])
    expired = certificate_from(tmp_path / "ca", tmp_path / "expired", ["127.0.0.1"], days=10,
                               start_days_ago=20)
    served = tmp_path / "served"
    served.mkdir()
    image = hello_image(tmp_path / "hello.aci", NAME, static_hello)

    def serve(files) -> None:  # type: ignore[no-untyped-def]
        # Swapped under the running server (key first, then the certificate, each renamed).
        for name in ("key.pem", "cert.pem"):
            (served / f".{name}").write_bytes((getattr(files, name.split(".")[0])).read_bytes())
            (served / f".{name}").rename(served / name)

    def scenario() -> None:
        serve(stranger)
        registry = LiveRegistry(tmp_path / "registry", port=443,
                                tls=(served / "cert.pem", served / "key.pem"), https=True)
        registry.verify = False  # the helper's own probes get through what clients refuse
        with registry:
            client = Client(tmp_path / "client")
            client.domain_file("127.0.0.1", caBundle=str(trusted.ca))
            for files, expected in (
                    (stranger, ("signed by an unknown CA", "--ca-bundle", "caBundle")),
                    (wrong, ("certificate of 127.0.0.1 is not valid for that name",
                             "must present a certificate for 127.0.0.1", "skips the check")),
                    (expired, ("certificate of 127.0.0.1 has expired", "renewed"))):
                before = served_certificate()["serial"]
                serve(files)
                if files is not stranger:
                    deadline = time.monotonic() + 10
                    while served_certificate()["serial"] == before:
                        assert time.monotonic() < deadline
                        time.sleep(0.2)
                    # each worker reloads on a watch of its own: one watch interval after a
                    # first worker served the new pair, every worker has it
                    time.sleep(WATCH_INTERVAL + 0.5)
                for args in (("trust", "--prefix", PREFIX, "--skip-fingerprint-review"),
                             ("fetch", f"{NAME}:1.0"), ("run", "--stage1=builtin", NAME)):
                    one_error_line(client.pyrkt(*args), *expected)
                one_error_line(client.pyrkt("push", str(image), "--registry", registry.base_url,
                                            "--token", registry.token or ""), *expected)
                assert not list(client.store.glob("**/*.aci"))

    in_netns(scenario)


def test_plain_http_on_443_and_a_refused_handshake_are_one_line_each(tmp_path: Path,
                                                                    static_hello: Path) -> None:
    def scenario() -> None:
        client = Client(tmp_path / "client")
        with LiveRegistry(tmp_path / "plain", port=443):  # plain HTTP where TLS is expected
            for args in (("trust", "--prefix", PREFIX, "--skip-fingerprint-review"),
                         ("fetch", f"{NAME}:1.0")):
                one_error_line(client.pyrkt(*args), "answers plain HTTP", "--insecure-options=http")
            one_error_line(client.pyrkt("push", str(image), "--registry",
                                        "https://127.0.0.1", "--token", "t"), "plain HTTP")
        # A server that accepts the connection and breaks off the handshake.
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 443))
        server.listen(16)
        stop = threading.Event()

        def refuse() -> None:
            server.settimeout(0.2)
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                conn.recv(4096)
                conn.sendall(b"\x15\x03\x03\x00\x02\x02\x28")  # TLS alert: handshake_failure
                conn.close()

        thread = threading.Thread(target=refuse, daemon=True)
        thread.start()
        try:
            for args in (("trust", "--prefix", PREFIX, "--skip-fingerprint-review"),
                         ("fetch", f"{NAME}:1.0")):
                one_error_line(client.pyrkt(*args), "refused the TLS handshake")
        finally:
            stop.set()
            thread.join()
            server.close()

    image = hello_image(tmp_path / "hello.aci", NAME, static_hello)
    in_netns(scenario)
