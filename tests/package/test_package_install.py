"""`pip install .` is the host side alone: in a fresh virtual environment (no system site
packages) the checkout installs without the `registry` extra, the server's libraries cannot be
imported, and yet `acbuild`, `docker2aci`, `pyrkt push`, `pyrkt trust`, `pyrkt fetch` and
`pyrkt run` all work against a live registry; `pyrkt-registry` says in one line what to install.

The wheel and the host side's dependencies are gathered into a wheelhouse first (pip's cache
and the configured indexes), so the install itself runs with --no-index."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import oci_images
import pytest
from components import missing
from live_registry import LiveRegistry

from registry.aci import read_aci

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
SERVER_MODULES = ["flask", "sqlalchemy", "alembic", "gunicorn", "boto3", "psycopg", "werkzeug"]


def _run(argv: list[str | Path], *, cwd: Path, env: dict[str, str],
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def host_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding `pip install <checkout>` without extras."""
    base = tmp_path_factory.mktemp("install")
    wheels, venv = base / "wheels", base / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _ok(_run([sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "-w", wheels,
              REPO], cwd=base, env=env, timeout=600))
    _ok(_run([sys.executable, "-m", "venv", venv], cwd=base, env=env))
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    _ok(_run([venv / "bin/python", "-m", "pip", "install", "-q", "--no-index", "--find-links",
              wheels, "pyrkt"], cwd=base, env=env, timeout=600))
    return venv


def _venv_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("PYRKT_")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    return env


def test_host_side_installs_and_works_without_the_server(host_venv: Path, tmp_path: Path,
                                                         static_hello: Path) -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("this test runs `pyrkt run`, which needs root")
        missing("`pyrkt run` needs root")
    env = _venv_env(host_venv)
    python = host_venv / "bin/python"
    # The installed copy is used, not the checkout.
    where = _ok(_run([python, "-c", "import registry; print(registry.__file__)"], cwd=tmp_path,
                     env=env))
    assert where.startswith(str(host_venv)), where
    for module in SERVER_MODULES:
        result = _run([python, "-c", f"import {module}"], cwd=tmp_path, env=env)
        assert result.returncode == 1 and "ModuleNotFoundError" in result.stderr, module
    listed = _ok(_run([python, "-m", "pip", "list", "--format=freeze"], cwd=tmp_path, env=env))
    assert not {"flask", "sqlalchemy", "alembic", "boto3", "gunicorn", "psycopg"} & {
        line.split("==")[0].lower() for line in listed.splitlines()}

    # pyrkt-registry exists and says in one line what to install.
    hint = _run(["pyrkt-registry", "serve"], cwd=tmp_path, env=env)
    assert hint.returncode == 1 and hint.stdout == "" and hint.stderr.count("\n") == 1
    assert hint.stderr.startswith("pyrkt-registry: the registry server's packages are not "
                                  "installed (missing: ")
    absent = hint.stderr.split("(missing: ", 1)[1].split(")", 1)[0].split(", ")
    assert {"Flask", "Werkzeug", "SQLAlchemy", "alembic", "gunicorn", "gevent", "boto3",
            "psycopg"} <= set(absent), absent
    assert "python3 -m pip install 'pyrkt[registry]'" in hint.stderr

    # acbuild builds an image from a static program.
    for step in (["begin"], ["set-name", "127.0.0.1/demo/hello"],
                 ["copy", static_hello, "/app/hello"], ["set-exec", "--", "/app/hello", "hi"],
                 ["label", "add", "version", "1.0"], ["write", "hello.aci"], ["end"]):
        _ok(_run(["acbuild", *step], cwd=tmp_path, env=env))
    built = read_aci(tmp_path / "hello.aci").image_id

    # docker2aci converts an OCI layout.
    layout = tmp_path / "layout"
    (tmp_path / "acis").mkdir()
    oci_images.write_oci_layout(layout, [[oci_images.file("bin/hello", source=static_hello,
                                                          mode=0o755)]], tag="v1")
    converted = _ok(_run(["docker2aci", "-o", tmp_path / "acis", layout], cwd=tmp_path,
                         env=env))
    # docker2aci's report ends with the files it wrote, one a line.
    assert "\nGenerated ACI(s):\n" in converted
    aci_path = Path(converted.split("\nGenerated ACI(s):\n", 1)[1].splitlines()[0])
    assert oci_images.aci_manifest(aci_path)["app"]["exec"][0] == "/bin/hello"

    # Push, trust, fetch (signature verified) and run against a live registry (run by the
    # test environment, which has the extra).
    with LiveRegistry(tmp_path / "registry") as registry:
        _ok(_run(["pyrkt", "push", "hello.aci", "--registry", registry.base_url, "--token",
                  registry.token or ""], cwd=tmp_path, env=env))
        client = ["--dir", tmp_path / "store", "--local-config", tmp_path / "etc",
                  "--user-config", tmp_path / "user"]
        _ok(_run(["pyrkt", "trust", *client, "--prefix", "127.0.0.1/demo",
                  "--insecure-allow-http", f"--port={registry.port}",
                  "--skip-fingerprint-review"], cwd=tmp_path, env=env))
        fetched = _ok(_run(["pyrkt", "fetch", *client, "--insecure-options=http",
                            f"--port={registry.port}", "--full", "-q",
                            "127.0.0.1/demo/hello:1.0"], cwd=tmp_path, env=env)).strip()
    assert fetched == built
    ran = _ok(_run(["pyrkt", "run", *client, "127.0.0.1/demo/hello:1.0"], cwd=tmp_path,
                   env=env, timeout=120))
    assert "Hello from pyrkt" in ran and "arg=hi" in ran
    # and collected as a user would: the exited pod's files and cgroups go (the host keeps none)
    collected = _ok(_run(["pyrkt", "gc", "--dir", tmp_path / "store", "--grace-period=0s"],
                         cwd=tmp_path, env=env))
    assert "Garbage collecting pod" in collected
    assert not list((tmp_path / "store" / "pods").glob("*/*"))


def test_host_side_installs_the_fast_deflate(host_venv: Path, tmp_path: Path) -> None:
    """isal comes with `pip install .` (offline, from the wheelhouse): the host tools' gzip
    (docker2aci, acbuild write, fetch) uses ISA-L, not the zlib fallback."""
    env = _venv_env(host_venv)
    used = _ok(_run([host_venv / "bin/python", "-c",
                     "from registry.aci.compression import DEFLATE; print(DEFLATE.name)"],
                    cwd=tmp_path, env=env))
    assert used.split() == ["isal"]


COSTLY_ON_START = {"re", "typing", "pathlib", "json", "enum", "functools", "contextlib",
                   "collections", "urllib", "sqlite3", "datetime", "click"}


def _imported(python: Path, argv: list[str | Path], env: dict[str, str], cwd: Path) -> set[str]:
    """The top-level modules a fresh `python -X importtime ...` imported."""
    done = _run([python, "-X", "importtime", *argv], cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    return {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()
            if line.startswith("import time:") and "|" in line} - {"package"}


def test_installed_console_script_starts_lean(host_venv: Path, tmp_path: Path) -> None:
    """The `pyrkt` script pip installs loads none of the modules each start would pay for
    (the script pip generates for an entry point imports re first: ours is written by hand)."""
    env = dict(_venv_env(host_venv), PYRKT_DIR=str(tmp_path / "store"))
    python, script = host_venv / "bin/python", host_venv / "bin/pyrkt"
    assert script.read_text().startswith(f"#!{python}"), script.read_text()[:200]
    floor = _imported(python, ["-c", "pass"], env, tmp_path)
    for command in (["list"], ["image", "list"]):
        loaded = _imported(python, [script, *command], env, tmp_path) - floor
        assert "registry" in loaded, loaded  # (the command did run)
        assert loaded & COSTLY_ON_START == set(), (command, sorted(loaded & COSTLY_ON_START))
