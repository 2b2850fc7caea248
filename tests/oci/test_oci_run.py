"""Issue 7's whole path: an OCI image built here is pushed into the registry with skopeo, then
`pyrkt run` runs it both as the signed ACI the registry converted (by its appc name) and
straight from `docker://` — the same program, the same Docker configuration mapped to appc."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import oci_images
import pytest
from components import need_root
from live_registry import LiveRegistry
from v2_client import skopeo

pytestmark = [pytest.mark.e2e, pytest.mark.root]

# The static hello prints its greeting, its working directory and its arguments; the Docker
# config gives Entrypoint /bin/hello, Cmd [first, second], WorkingDir /data, User 1000:100.
EXPECTED_OUTPUT = "Hello from pyrkt\ncwd=/data\narg=first\narg=second\n"


def pyrkt(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, PYRKT_DIR=str(store))
    return subprocess.run([sys.executable, "-m", "registry.cli.main", *args],
                          capture_output=True, text=True, env=environ, timeout=300)


def collect(store: Path) -> None:
    """The exited pod collected (its cgroups are the host's until then), as a user would."""
    collected = pyrkt(store, "gc", "--grace-period=0s")
    assert collected.returncode == 0, collected.stderr
    assert not list((store / "pods").glob("*/*")), collected.stdout


def config_flags(config: Path) -> list[str]:
    return ["--local-config", str(config / "local"), "--user-config", str(config / "user")]


@pytest.fixture(scope="module")
def pushed_hello(registry: LiveRegistry, static_hello: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> str:
    """`team/runme:v1` in the registry: the sample layers with a real program as /bin/hello."""
    layout = tmp_path_factory.mktemp("oci-run") / "layout"
    image = oci_images.write_oci_layout(layout, oci_images.sample_layers(hello=static_hello),
                                        tag="v1", runtime=oci_images.default_config())
    pushed = skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds",
                    f"admin:{registry.token}", f"oci:{image.layout}:v1",
                    f"docker://127.0.0.1:{registry.port}/team/runme:v1")
    assert pushed.returncode == 0, pushed.stderr
    return "team/runme:v1"


def test_run_the_converted_aci_by_its_appc_name(registry: LiveRegistry, pushed_hello: str,
                                                tmp_path: Path) -> None:
    need_root("pyrkt run (its namespaces)")
    store, config, port = tmp_path / "store", tmp_path / "config", str(registry.port)
    trusted = pyrkt(store, "trust", *config_flags(config), "--prefix",
                    "127.0.0.1/team/runme", "--insecure-allow-http", "--port", port,
                    "--skip-fingerprint-review")
    assert trusted.returncode == 0, trusted.stderr
    fetched = pyrkt(store, "fetch", *config_flags(config), "--insecure-options=http",
                    "--port", port, "127.0.0.1/team/runme:v1")
    assert fetched.returncode == 0, fetched.stderr + registry.log()
    assert "signature verified" in fetched.stderr

    ran = pyrkt(store, "run", "--net=none", "--pull-policy", "never", "--stage1", "builtin",
                "127.0.0.1/team/runme:v1")
    assert ran.returncode == 0, ran.stderr
    assert EXPECTED_OUTPUT in ran.stdout
    collect(store)


def test_run_straight_from_docker_reference(registry: LiveRegistry, pushed_hello: str,
                                            tmp_path: Path) -> None:
    need_root("pyrkt run (its namespaces)")
    store = tmp_path / "store"
    reference = f"docker://127.0.0.1:{registry.port}/{pushed_hello}"
    refused = pyrkt(store, "run", "--net=none", "--stage1", "builtin", reference)
    assert refused.returncode != 0
    assert "insecure-options=image" in refused.stderr  # Docker images carry no appc signature

    ran = pyrkt(store, "run", "--net=none", "--insecure-options=image,http", "--stage1", "builtin",
                reference)
    assert ran.returncode == 0, ran.stderr
    assert EXPECTED_OUTPUT in ran.stdout
    collect(store)
