"""The rest of the HTTPS surface: the OCI /v2/ API with skopeo (--dest-cert-dir /
--src-cert-dir), `docker2aci docker://` and `pyrkt fetch docker://` with a CA bundle, the appc
offer of an OCI push fetched by name, and presigned S3 redirects from an HTTPS registry
(moto's server over TLS too: a registry on HTTPS must not redirect clients to plain HTTP)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import oci_images
import pytest
import requests
from live_registry import LiveRegistry, s3_settings
from tls_helpers import Client, hello_image, in_netns, local_ca, one_error_line

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def _skopeo(policy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", "--policy", str(policy), *args], capture_output=True,
                          text=True, timeout=180)


def test_skopeo_docker2aci_and_the_appc_offer_over_https(tmp_path: Path) -> None:
    if shutil.which("skopeo") is None:
        pytest.fail("Debian's skopeo is not installed (.ci/run installs it)")
    layout = oci_images.write_oci_layout(tmp_path / "layout", oci_images.sample_layers(),
                                         tag="v1")
    files = local_ca(tmp_path / "tls")
    cert_dir = tmp_path / "certs.d"  # containers/image: *.crt files are trusted roots
    cert_dir.mkdir()
    shutil.copy(files.ca, cert_dir / "ca.crt")
    policy = tmp_path / "policy.json"
    policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')

    def scenario() -> None:
        with LiveRegistry(tmp_path / "registry", port=443, tls=(files.cert, files.key),
                          ca_bundle=files.ca) as registry:
            target = "docker://127.0.0.1/team/app:v1"
            refused = _skopeo(policy, "copy", "--quiet", "--dest-creds",
                              f"admin:{registry.token}", f"oci:{layout.layout}:v1", target)
            assert refused.returncode != 0
            assert "certificate" in refused.stderr.lower(), refused.stderr
            pushed = _skopeo(policy, "copy", "--quiet", "--dest-cert-dir", str(cert_dir),
                             "--dest-creds", f"admin:{registry.token}",
                             f"oci:{layout.layout}:v1", target)
            assert pushed.returncode == 0, pushed.stderr + registry.log()
            inspected = _skopeo(policy, "inspect", "--cert-dir", str(cert_dir), target)
            assert inspected.returncode == 0, inspected.stderr
            assert json.loads(inspected.stdout)["Digest"] == layout.manifest.digest
            pulled = _skopeo(policy, "copy", "--quiet", "--src-cert-dir", str(cert_dir), target,
                             f"oci:{tmp_path / 'pulled'}:v1")
            assert pulled.returncode == 0, pulled.stderr

            client = Client(tmp_path / "client")
            out = tmp_path / "acis"
            out.mkdir()
            # docker2aci: refused without the CA (one line naming --ca-bundle), fine with it.
            line = one_error_line(client.tool("docker2aci", target, "-o", str(out)),
                                  "unknown CA", "--ca-bundle")
            assert "127.0.0.1" in line
            converted = client.tool("docker2aci", "--ca-bundle", str(files.ca), target,
                                    "-o", str(out))
            assert converted.returncode == 0, converted.stderr
            assert list(out.glob("*.aci")), converted.stdout

            # pyrkt fetch docker:// and the signed appc offer by plain name, through the
            # domains.d caBundle of 127.0.0.1 (no --port, no http/tls insecure option).
            one_error_line(client.pyrkt("fetch", "--insecure-options=image", target),
                           "unknown CA", "--ca-bundle")
            client.domain_file("127.0.0.1", caBundle=str(files.ca))
            from_docker = client.pyrkt("fetch", "--insecure-options=image", target)
            assert from_docker.returncode == 0, from_docker.stderr
            trusted = client.pyrkt("trust", "--prefix", "127.0.0.1/team/app",
                                   "--skip-fingerprint-review")
            assert trusted.returncode == 0, trusted.stderr
            # (--pull-policy=update: the docker:// copy above carries the same name)
            by_name = client.pyrkt("fetch", "--pull-policy=update", "127.0.0.1/team/app:v1")
            assert by_name.returncode == 0, by_name.stderr + registry.log()
            assert "signature verified" in by_name.stderr

    in_netns(scenario)


def test_presigned_s3_redirects_from_an_https_registry(tmp_path: Path, static_hello: Path) -> None:
    files = local_ca(tmp_path / "tls")
    name = "127.0.0.1/demo/hello"
    image = hello_image(tmp_path / "hello.aci", name, static_hello)

    def scenario() -> None:
        log = (tmp_path / "moto.log").open("wb")
        moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                 "-p", "9443", "-c", str(files.cert), "-k", str(files.key)],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    requests.get("https://127.0.0.1:9443/", verify=str(files.ca), timeout=2)
                    break
                except requests.RequestException:
                    assert time.monotonic() < deadline, (tmp_path / "moto.log").read_text()
                    time.sleep(0.3)
            storage = s3_settings("https://127.0.0.1:9443", "tls-bucket", presign=True)
            storage["S3_CREATE_BUCKET"] = "1"
            with LiveRegistry(tmp_path / "registry", port=443, tls=(files.cert, files.key),
                              ca_bundle=files.ca, storage=storage,
                              env={"AWS_CA_BUNDLE": str(files.ca)}) as registry:
                client = Client(tmp_path / "client")
                client.domain_file("127.0.0.1", caBundle=str(files.ca))
                pushed = client.pyrkt("push", str(image), "--registry", registry.base_url,
                                      "--token", registry.token or "")
                assert pushed.returncode == 0, pushed.stderr + registry.log()
                aci_url = registry.url(f"/_aci/{name}/1.0/linux/amd64/image.aci")
                moved = requests.get(aci_url, allow_redirects=False, verify=str(files.ca),
                                     timeout=30)
                assert moved.status_code in (302, 303, 307), moved.status_code
                assert moved.headers["Location"].startswith("https://127.0.0.1:9443/tls-bucket/")
                trusted = client.pyrkt("trust", "--prefix", "127.0.0.1/demo",
                                       "--skip-fingerprint-review")
                assert trusted.returncode == 0, trusted.stderr
                fetched = client.pyrkt("fetch", f"{name}:1.0")
                assert fetched.returncode == 0, fetched.stderr + registry.log()
                assert "signature verified" in fetched.stderr
        finally:
            moto.terminate()
            moto.wait(20)
            log.close()

    in_netns(scenario)
