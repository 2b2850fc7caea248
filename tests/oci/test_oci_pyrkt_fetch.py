"""pyrkt's own client fetches an OCI-pushed image by its appc name (signature checked against
the trusted registry key, through the 202 while it converts) and by `docker://`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import oci_images
import pytest
from live_registry import LiveRegistry
from v2_client import skopeo

pytestmark = [pytest.mark.e2e]


def pyrkt(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, PYRKT_DIR=str(tmp_path / "store"))
    return subprocess.run([sys.executable, "-m", "registry.cli.main", *args,
                           "--local-config", str(tmp_path / "config"),
                           "--user-config", str(tmp_path / "user-config")],
                          capture_output=True, text=True, env=environ, timeout=300)


def test_pyrkt_fetch_by_appc_name_and_docker_reference(registry: LiveRegistry, sample_image,
                                                       tmp_path: Path) -> None:
    pushed = skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds",
                    f"admin:{registry.token}", f"oci:{sample_image.layout}:v1",
                    f"docker://127.0.0.1:{registry.port}/team/fetched:v1")
    assert pushed.returncode == 0, pushed.stderr
    port = str(registry.port)
    trusted = pyrkt(tmp_path, "trust", "--prefix", "127.0.0.1/team/fetched",
                    "--insecure-allow-http", "--port", port, "--skip-fingerprint-review")
    assert trusted.returncode == 0, trusted.stderr

    fetched = pyrkt(tmp_path, "fetch", "--insecure-options=http", "--port", port,
                    "127.0.0.1/team/fetched:v1")
    assert fetched.returncode == 0, fetched.stderr + registry.log()
    assert "signature verified" in fetched.stderr
    image_id = fetched.stdout.strip().splitlines()[-1]
    assert image_id.startswith("sha512-")

    from_docker = pyrkt(tmp_path, "fetch", "--insecure-options=image,http",
                        f"docker://127.0.0.1:{port}/team/fetched:v1")
    assert from_docker.returncode == 0, from_docker.stderr
    docker_id = from_docker.stdout.strip().splitlines()[-1]
    # The same squashed rootfs both ways (the names differ: docker2aci names the image
    # after the host:port it pulled from, the registry after its repository).
    for stored in (image_id, docker_id):
        exported = tmp_path / f"{stored[:20]}.aci"
        export = pyrkt(tmp_path, "image", "export", stored, str(exported))
        assert export.returncode == 0, export.stderr
        assert oci_images.rootfs_listing(exported) == oci_images.SAMPLE_ROOTFS
