"""Plain helpers for the launcher's tests (the fixtures stay in conftest.py).

Tests import these as `from launcher_helpers import ...`: pytest puts tests/ on sys.path and
every test folder has its own conftest.py, so `from conftest import ...` would pick whichever
folder's conftest was imported last when several folders are collected in one run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from components import missing

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
CACHE_DIR = Path(os.environ.get("PYRKT_TEST_CACHE", REPO_ROOT / ".test-cache"))
CGROUP_ROOT = Path("/sys/fs/cgroup")


def needs_root() -> None:
    if os.geteuid() != 0:
        missing("the launcher's namespaces and cgroups need root")


def write_image(out: Path, name: str, files: dict[str, Path | str], app: dict[str, Any] | None,
                extra_dirs: tuple[str, ...] = (), links: dict[str, str] | None = None) -> Path:
    """An ACI at `out` with `files` (image path -> host file, or text), `links` (image path ->
    symlink target) and the given app."""
    from registry.aci import ImageManifest, write_aci

    rootfs = out.parent / f"{out.stem}-rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.mkdir(parents=True)
    for directory in extra_dirs:
        (rootfs / directory.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for inside, source in files.items():
        target = rootfs / inside.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, Path):
            shutil.copy2(source, target)
        else:
            target.write_text(source)
    for inside, link_target in (links or {}).items():
        link = rootfs / inside.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(link_target)
    manifest: dict[str, Any] = {
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
        "labels": [{"name": "version", "value": "1"}, {"name": "os", "value": "linux"},
                   {"name": "arch", "value": "amd64"}],
    }
    if app is not None:
        manifest["app"] = {"user": "0", "group": "0", **app}
    write_aci(ImageManifest.from_dict(manifest), rootfs, out)
    return out


def build_tool_binary() -> Path:
    """tests/launcher/tool.c built with `cc -static` once (runs the commands given as arguments)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    source = HERE / "tool.c"
    # Keyed by the source's content (a fresh clone's mtime is new every CI run), built under a
    # private name and renamed: parallel workers (pytest -n) never run a half-written binary.
    target = CACHE_DIR / f"launcher-tool-{hashlib.sha256(source.read_bytes()).hexdigest()[:12]}"
    if not target.exists():
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        subprocess.run(["cc", "-static", "-O1", "-o", str(partial), str(source)], check=True,
                       capture_output=True)
        os.replace(partial, target)
    return target


def make_tool_image(directory: Path, tool_binary: Path, name: str = "example.com/tool",
                    app: dict[str, Any] | None = None,
                    files: dict[str, Path | str] | None = None) -> Path:
    """An image in `directory` running the test tool (/bin/tool, with a passwd and group)."""
    short = name.rsplit("/", 1)[-1]
    contents: dict[str, Path | str] = {
        "/bin/tool": tool_binary,
        "/etc/passwd": "root:x:0:0:root:/root:/bin/sh\nworker:x:1234:2345::/home:/bin/sh\n",
        "/etc/group": "root:x:0:\nworkers:x:2345:\n",
    }
    contents.update(files or {})
    return write_image(directory / f"{short}.aci", name, contents,
                       {"exec": ["/bin/tool"], **(app or {})}, extra_dirs=("/tmp",))


def wait_for_file(path: Path, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear within {timeout}s")


def wait_for_app_pid(store: Path, uuid: str, app: str, timeout: float = 20) -> str:
    """The app's pid once it runs. The pod is looked up at every poll: the uuid file is written
    while the pod is still prepared, and it moves to pods/run/ when the stage1 starts."""
    from registry.launcher.pods import find_pod

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = Path(find_pod(store, uuid).app_dir(app)) / "pid"
        if pid.exists() and pid.read_text().strip():
            return pid.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"app {app} of pod {uuid} wrote no pid within {timeout}s")


def status_of(pyrkt: Callable[..., Any], uuid: str, *extra: str) -> dict[str, str]:
    result = pyrkt("status", *extra, uuid, check=True)
    return dict(line.split("=", 1) for line in result.stdout.splitlines())


def pod_json(pyrkt: Callable[..., Any]) -> list[dict[str, Any]]:
    return json.loads(pyrkt("list", "--format", "json", check=True).stdout)


BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static (.ci/run installs it)
BUSYBOX_APPLETS = ("sh", "sleep", "echo", "cat", "tty", "stty", "ls", "kill", "true")


def busybox_files() -> tuple[dict[str, Path | str], dict[str, str]]:
    """Files and links of a minimal shell image: a static busybox and its applets in /bin."""
    if not BUSYBOX.exists():
        pytest.fail("these tests need a static busybox: apt-get install busybox-static")
    return {"/bin/busybox": BUSYBOX}, {f"/bin/{applet}": "busybox" for applet in BUSYBOX_APPLETS}
