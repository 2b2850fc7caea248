"""When a registry cannot be reached, each command names its own flag for plain HTTP/TLS."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends: nothing listens


def test_docker2aci_suggests_its_insecure_flag(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "registry.cli.main", "docker2aci", "-o", str(tmp_path),
         f"docker://127.0.0.1:{_closed_port()}/team/app:v1"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "cannot reach registry" in result.stderr
    assert "use -insecure-allow-http and -insecure-skip-verify (or --insecure) for plain HTTP" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_pyrkt_fetch_suggests_insecure_options(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "registry.cli.main", "fetch", "--dir", str(tmp_path / "store"),
         "--local-config", str(tmp_path / "etc"), "--user-config", str(tmp_path / "user"),
         "--insecure-options=image", f"docker://127.0.0.1:{_closed_port()}/team/app:v1"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "cannot reach registry" in result.stderr
    assert "--insecure-options=http,tls" in result.stderr
    assert "--insecure " not in result.stderr
