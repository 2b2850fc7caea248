"""Apps start with default signal dispositions, not the ones Python gives itself.

Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across exec: an app
started from Python as-is would never die of a closed pipe (`pyrkt run IMAGE | head -1` would
hang while the app keeps writing). Every path that execs a program checks here: the pod's apps
(both ways their output can go), `pyrkt enter` and `acbuild run` (`run_in_rootfs`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest
from launcher_helpers import needs_root, status_of, wait_for_app_pid, wait_for_file

from registry.launcher.oneshot import run_in_rootfs

pytestmark = [pytest.mark.root, pytest.mark.e2e]


@pytest.fixture(autouse=True)
def _root() -> None:
    needs_root()


def _status_field(output: str, field: str) -> str:
    """A field of /proc/self/status as the test tool's `cat` printed it."""
    for line in output.splitlines():
        if line.startswith(f"{field}:"):
            return line.split(":", 1)[1].strip()
        if f" {field}:" in line:  # the first line carries the tool's "cat PATH: " prefix
            return line.rsplit(":", 1)[1].strip()
    raise AssertionError(f"no {field} in {output!r}")


@pytest.mark.parametrize("interactive", [False, True], ids=["logged", "interactive"])
def test_app_starts_with_no_ignored_or_blocked_signals(tool_image, pyrkt, interactive) -> None:
    image = tool_image()
    flags = ["--interactive"] if interactive else []
    result = pyrkt("run", "--insecure-options=image", *flags, str(image), "--",
                   "cat", "/proc/self/status")
    assert result.returncode == 0, result.stderr
    assert int(_status_field(result.stdout, "SigIgn"), 16) == 0, result.stdout
    assert int(_status_field(result.stdout, "SigBlk"), 16) == 0, result.stdout


@pytest.mark.parametrize("interactive", [False, True], ids=["logged", "interactive"])
def test_endless_writer_piped_into_head_ends_promptly(tmp_path, tool_image, pyrkt, store,
                                                      interactive) -> None:
    image = tool_image()
    pyrkt("fetch", "--insecure-options=image", str(image), check=True)
    uuid_file = tmp_path / "uuid"
    command = [sys.executable, "-m", "registry.cli.entry", "run", f"--uuid-file-save={uuid_file}",
               *(["--interactive"] if interactive else []), "example.com/tool", "--", "yes"]
    env = dict(os.environ, PYRKT_DIR=str(store))
    started = time.monotonic()
    try:
        result = subprocess.run(["bash", "-c", f"{shlex.join(command)} | head -1"], env=env,
                                capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the app kept writing into a closed pipe")
    assert result.stdout == "y\n", result.stderr
    assert time.monotonic() - started < 30
    uuid = wait_for_file(uuid_file)
    status = status_of(pyrkt, uuid, "--wait", "--wait-timeout=20")
    assert status["state"] == "exited" and status["app-tool"] == "141"  # 128 + SIGPIPE


def test_entered_command_starts_with_no_ignored_signals(tmp_path, tool_image, start_pyrkt,
                                                        pyrkt) -> None:
    image = tool_image()
    uuid_file = tmp_path / "uuid"
    start_pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}", str(image),
                "--", "hostname", "sleep", "60")
    uuid = wait_for_file(uuid_file)
    deadline = time.monotonic() + 20
    while "hostname=" not in pyrkt("logs", uuid).stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    entered = pyrkt("enter", uuid, "/bin/tool", "cat", "/proc/self/status", check=True)
    assert int(_status_field(entered.stdout, "SigIgn"), 16) == 0, entered.stdout
    pyrkt("stop", uuid, check=True)


def test_run_in_rootfs_starts_with_no_ignored_signals(tmp_path, tool_binary, capfd) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(tool_binary, rootfs / "bin" / "tool")
    assert run_in_rootfs(rootfs, ["/bin/tool", "cat", "/proc/self/status"]) == 0
    out = capfd.readouterr().out
    assert int(_status_field(out, "SigIgn"), 16) == 0, out
    assert int(_status_field(out, "SigBlk"), 16) == 0, out


def test_apps_killed_by_signals_exit_128_plus_n(tmp_path, tool_image, start_pyrkt, pyrkt,
                                                store) -> None:
    """An app's code is its own: SIGKILL 137, SIGTERM 143 (the shell's 128+N), whoever sends it;
    the pod's code is the first app's non-zero one."""
    image = tool_image()
    uuid_file = tmp_path / "uuid"
    process = start_pyrkt("run", "--insecure-options=image", "--net=none",
                          f"--uuid-file-save={uuid_file}",
                          str(image), "--name=killed", "--", "sleep", "60", "---",
                          str(image), "--name=termed", "--", "sleep", "60")
    uuid = wait_for_file(uuid_file)
    pids = {name: wait_for_app_pid(store, uuid, name) for name in ("killed", "termed")}
    os.kill(int(pids["killed"]), signal.SIGKILL)
    os.kill(int(pids["termed"]), signal.SIGTERM)
    assert process.wait(timeout=30) == 137
    status = status_of(pyrkt, uuid)
    assert (status["app-killed"], status["app-termed"]) == ("137", "143")
    assert "app-killed-reason" not in status  # killed, but not by the OOM killer
