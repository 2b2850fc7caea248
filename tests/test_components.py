"""A missing component skips a local run but fails CI (CI=true): run for real in a child
pytest, both ways; and every test has a deadline (pytest-timeout)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _child(tmp_path: Path, body: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_child.py").write_text(body)
    environ = {k: v for k, v in os.environ.items() if k != "CI"}
    environ.update(env, PYTHONPATH=str(HERE))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-rs", str(tmp_path / "test_child.py")], cwd=tmp_path, env=environ,
                          capture_output=True, text=True, timeout=120)


NEEDS_POSTGRES = """
from components import missing

def test_needs_a_database():
    missing("PYRKT_TEST_POSTGRES_URL is not set")
"""


def test_missing_component_skips_locally(tmp_path: Path) -> None:
    result = _child(tmp_path, NEEDS_POSTGRES)
    assert result.returncode == 0 and "1 skipped" in result.stdout, result.stdout


def test_missing_component_fails_in_ci(tmp_path: Path) -> None:
    result = _child(tmp_path, NEEDS_POSTGRES, CI="true")
    assert result.returncode == 1 and "1 failed" in result.stdout, result.stdout
    assert "CI=true: a missing component fails the run" in result.stdout


def test_every_test_has_a_deadline(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntimeout = 2\n")
    result = _child(tmp_path, "import time\n\ndef test_hangs():\n    time.sleep(30)\n")
    assert result.returncode == 1 and "Timeout" in result.stdout + result.stderr, result.stdout


def test_the_suite_configures_a_timeout() -> None:
    import tomllib

    config = tomllib.loads((HERE.parent / "pyproject.toml").read_text())
    assert config["tool"]["pytest"]["ini_options"]["timeout"] >= 300
