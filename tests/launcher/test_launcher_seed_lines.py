"""The seed's command lines, verbatim with `pyrkt` for `rkt` (and without `sudo`: tests run as root).

Each line runs through bash, in a network namespace of its own (lo only), against a private
store. The images are real ACIs: the seed's own acbuild lines build hello-latest-linux-amd64.aci
from a static program, and `quay.io/quay/redis` and demo-api-redis are small images of the
launcher's test tool (no network: quay.io is never contacted; the store already holds the name).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from launcher_helpers import needs_root, write_image

pytestmark = [pytest.mark.root, pytest.mark.e2e]

# From /work/shared/seeds (the seed's Rkt notes), word for word.
ACBUILD_LINES = [
    "acbuild begin",
    "acbuild set-name hello",
    "acbuild copy hello /app/hello",
    "acbuild set-working-directory /app",
    "acbuild set-exec -- /app/hello",
    "acbuild write --overwrite hello-latest-linux-amd64.aci",
]
IMAGE_LIST = "pyrkt image list"
LIST = "pyrkt list"
RUN_UNSIGNED = "pyrkt --insecure-options=image run hello-latest-linux-amd64.aci"
GC = "pyrkt gc"
IMAGE_GC = "pyrkt image gc"
RUN_POD = ("pyrkt run --volume volume--var-lib-redis,kind=host,source=/var/lib/redis "
           "quay.io/quay/redis \\\n  --insecure-options=image --port=http:9000 --set-env "
           "REDIS_HOST=localhost \\\n  ~/Development/demo-api-redis/demo-api-redis-latest-linux-amd64.aci")
RUN_LIMITS = ("pyrkt run --cpu=500 --memory=512M quay.io/quay/redis --insecure-options=image \\\n"
              "  --port=http:9000 --set-env REDIS_HOST=localhost demo-api-redis-latest-linux-amd64.aci")


@pytest.fixture(autouse=True)
def _root() -> None:
    needs_root()


@pytest.fixture
def host_volume() -> Path:
    """/var/lib/redis, the seed's host volume (made for the test, removed after if it was)."""
    path = Path("/var/lib/redis")
    made = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    marker = path / "pyrkt-seed-test-marker"
    marker.write_text("from the host\n")
    yield path
    marker.unlink(missing_ok=True)
    if made:
        shutil.rmtree(path, ignore_errors=True)


def seed(line: str, cwd: Path, store: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """One seed line through bash, in a fresh network namespace (lo up), as root."""
    env = dict(os.environ, PYRKT_DIR=str(store), HOME=str(home),
               PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    return subprocess.run(["unshare", "-n", "--", "bash", "-c", f"ip link set lo up && {line}"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args[-1]}\n{result.stdout}{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout + result.stderr


def test_every_seed_line_verbatim(tmp_path: Path, store: Path, static_hello: Path,
                                  tool_binary: Path, host_volume: Path) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    shutil.copy(static_hello, work / "hello")
    for line in ACBUILD_LINES:
        ok(seed(line, work, store, home))
    assert (work / "hello-latest-linux-amd64.aci").is_file()

    # The images the pod lines name: "quay.io/quay/redis" (already in the store, as after a
    # fetch) and demo-api-redis (a file, twice: under ~/Development and in the working dir).
    redis = write_image(tmp_path / "redis.aci", "quay.io/quay/redis", {"/bin/tool": tool_binary},
                        {"exec": ["/bin/tool", "env", "REDIS_HOST", "cat",
                                  "/var/lib/redis/pyrkt-seed-test-marker", "exit", "0"],
                         "mountPoints": [{"name": "volume--var-lib-redis",
                                          "path": "/var/lib/redis"}]})
    ok(seed(f"pyrkt fetch --insecure-options=image {redis}", work, store, home))
    demo_dir = home / "Development" / "demo-api-redis"
    demo_dir.mkdir(parents=True)
    demo = write_image(demo_dir / "demo-api-redis-latest-linux-amd64.aci",
                       "example.com/demo-api-redis", {"/bin/tool": tool_binary},
                       {"exec": ["/bin/tool", "env", "REDIS_HOST", "exit", "0"],
                        "ports": [{"name": "http", "protocol": "tcp", "port": 8080}]})
    shutil.copy(demo, work / demo.name)

    out = ok(seed(RUN_UNSIGNED, work, store, home))
    assert "Hello from pyrkt" in out and "cwd=/app" in out

    out = ok(seed(RUN_POD, work, store, home))
    # --set-env is for every app wherever it stands (rkt's; --environment is the per-app one),
    # so both apps see REDIS_HOST; the host volume is mounted at the image's mount point.
    assert out.count("env REDIS_HOST=localhost") == 2 and "from the host" in out, out
    assert "env REDIS_HOST=(unset)" not in out, out

    limits = seed(RUN_LIMITS, work, store, home)
    out = ok(limits)
    if (os.cpu_count() or 1) < 500:
        assert "--cpu=500 means 500 CPUs (as in rkt)" in limits.stderr
        assert "write --cpu=500m" in limits.stderr

    images = ok(seed(IMAGE_LIST, work, store, home))
    assert "quay.io/quay/redis" in images and "hello" in images
    pods = ok(seed(LIST, work, store, home))
    assert pods.count("exited") >= 3, pods
    ok(seed(GC, work, store, home))
    ok(seed(IMAGE_GC, work, store, home))


def test_global_flags_before_the_subcommand(tmp_path: Path, store: Path) -> None:
    home = tmp_path / "home"
    out = ok(seed("pyrkt --debug list", tmp_path, store, home))
    assert "UUID" in out
    version = ok(seed("pyrkt version", tmp_path, store, home))
    assert "appc Version: 0.8.11" in version and "Features:" in version
    other = tmp_path / "other-store"
    image = write_image(tmp_path / "x.aci", "example.com/global-flags", {"/x": "x"}, None)
    fetched = ok(seed(f"pyrkt --dir={other} --insecure-options=image fetch {image}",
                      tmp_path, store, home))
    assert "sha512-" in fetched
    assert "example.com/global-flags" in ok(seed(f"pyrkt --dir {other} image list", tmp_path,
                                                 store, home))
    assert "example.com/global-flags" not in ok(seed(IMAGE_LIST, tmp_path, store, home))
    # Given after the subcommand as well, that one wins (as the last of two rkt flags does).
    refused = seed(f"pyrkt --insecure-options=image fetch --insecure-options=none {image}",
                   tmp_path, store, home)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr


def test_a_registry_port_given_to_run_says_how_to_give_it(tmp_path: Path, store: Path) -> None:
    result = seed("pyrkt run --port=8080 127.0.0.1/demo/hello:1.0", tmp_path, store,
                  tmp_path / "home")
    assert result.returncode != 0
    assert "--port forwards a host port" in result.stderr
    assert "domains.d" in result.stderr and "pyrkt fetch --port=8080" in result.stderr
    assert "Traceback" not in result.stderr
