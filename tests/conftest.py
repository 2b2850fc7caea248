"""Fixtures shared by every test folder: the real tools the project is checked against."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# .ci/run's parallel run (-n 2 --dist loadfile): the longest files first, tests/vm as one unit.
pytest_plugins = ["xdist_schedule"]

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("PYRKT_TEST_CACHE", REPO_ROOT / ".test-cache"))

HELLO_C = r"""
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char cwd[4096];
    printf("Hello from pyrkt\n");
    if (getcwd(cwd, sizeof cwd)) printf("cwd=%s\n", cwd);
    for (int i = 1; i < argc; i++) printf("arg=%s\n", argv[i]);
    return 0;
}
"""


def _cache() -> Path:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    return CACHE_DIR


@pytest.fixture(scope="session")
def actool() -> str:
    """Path to appc's reference `actool`, built offline from Debian's golang-github-appc-spec-dev."""
    found = os.environ.get("ACTOOL") or shutil.which("actool")
    if found:
        return found
    target = _cache() / "actool"
    if not target.exists():
        if not Path("/usr/share/gocode/src/github.com/appc/spec").is_dir():
            pytest.fail("actool missing: apt-get install golang-go golang-github-appc-spec-dev")
        env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode", GOPROXY="off",
                   GOCACHE=str(_cache() / "gocache"), GOFLAGS="")
        partial = target.with_name(f".actool.{os.getpid()}")  # renamed when whole, as above
        subprocess.run(["go", "build", "-o", str(partial), "github.com/appc/spec/actool"],
                       check=True, env=env)
        os.replace(partial, target)
    return str(target)


@pytest.fixture(scope="session")
def static_hello() -> Path:
    """A small static Linux program (prints a greeting, its cwd and its arguments)."""
    target = _cache() / "hello"
    if not target.exists():
        # Built under a private name, then renamed: .ci/run's parallel workers (pytest -n) may
        # build it at the same time, and neither may run the other's half-written file.
        source = _cache() / f".hello.{os.getpid()}.c"
        source.write_text(HELLO_C)
        partial = target.with_name(f".hello.{os.getpid()}")
        subprocess.run(["cc", "-static", "-Os", "-o", str(partial), str(source)], check=True)
        source.unlink()
        os.replace(partial, target)
    return target


@pytest.fixture(scope="session")
def actool_validate(actool):
    """A function that fails the test with actool's own words unless it accepts an ACI."""

    def validate(aci: Path | str) -> None:
        result = subprocess.run([actool, "validate", str(aci)], capture_output=True, text=True)
        assert result.returncode == 0, f"actool validate {aci}: {result.stdout}{result.stderr}"

    return validate
