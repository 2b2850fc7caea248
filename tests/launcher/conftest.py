"""Fixtures for the launcher tests: static test apps, images built from them, a private store,
and a guard that no pod, cgroup or mount survives a test (even a failing one). Every test runs
in a network namespace of its own (`test_netns`): pods get real veths, routes and NAT rules
from the CNI plugins, and those must never reach the host's network.

Plain helpers live in launcher_helpers.py (import them from there, never from conftest)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from launcher_helpers import build_tool_binary, busybox_files, make_tool_image, write_image
from netns_helpers import own_network_namespace
from store_cleanup import clean_store


@pytest.fixture(autouse=True)
def test_netns() -> Iterator[Path | None]:
    """The test's own network namespace (first fixture in, last out: the store's cleanup, which
    DELs the pods' networks, runs inside it too). Without root the tests skip anyway."""
    if os.geteuid() != 0:
        yield None
        return
    with own_network_namespace() as path:
        yield path


@pytest.fixture(scope="session")
def tool_binary() -> Path:
    """tests/launcher/tool.c built with `cc -static` (runs the commands given as arguments)."""
    return build_tool_binary()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    """A private store directory; every pod left in it is stopped and collected afterwards."""
    directory = tmp_path / "store"
    directory.mkdir()
    yield directory
    clean_store(directory)


@pytest.fixture
def tool_image(tmp_path: Path, tool_binary: Path) -> Callable[..., Path]:
    """Build an image running the test tool: tool_image(name, app_overrides, files=...)."""

    def make(name: str = "example.com/tool", app: dict[str, Any] | None = None,
             files: dict[str, Path | str] | None = None) -> Path:
        return make_tool_image(tmp_path, tool_binary, name, app, files)

    return make


@pytest.fixture
def shell_image(tmp_path: Path, tool_binary: Path) -> Callable[..., Path]:
    """An image with a static busybox shell (and the test tool): shell_image(script, app=...)
    runs `sh -c SCRIPT` as its app."""

    def make(script: str, name: str = "example.com/shell",
             app: dict[str, Any] | None = None) -> Path:
        files, links = busybox_files()
        files = {**files, "/bin/tool": tool_binary,
                 "/etc/passwd": "root:x:0:0:root:/root:/bin/sh\nworker:x:1234:2345::/:/bin/sh\n",
                 "/etc/group": "root:x:0:\nworkers:x:2345:\n"}
        return write_image(tmp_path / f"{name.rsplit('/', 1)[-1]}.aci", name, files,
                           {"exec": ["/bin/sh", "-c", script], **(app or {})},
                           extra_dirs=("/tmp",), links=links)

    return make


@pytest.fixture
def pyrkt(store: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real `pyrkt` command against the test store."""

    def run(*args: str, timeout: float = 60, check: bool = False,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYRKT_DIR=str(store))
        result = subprocess.run([sys.executable, "-m", "registry.cli.entry", *args], env=env,
                                capture_output=True, text=True, timeout=timeout, **kwargs)
        if check:
            assert result.returncode == 0, f"pyrkt {' '.join(args)}: {result.stdout}{result.stderr}"
        return result

    return run


@pytest.fixture
def start_pyrkt(store: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start `pyrkt run` in the background; killed (if still running) after the test."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        env = dict(os.environ, PYRKT_DIR=str(store))
        process = subprocess.Popen([sys.executable, "-m", "registry.cli.entry", *args], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


