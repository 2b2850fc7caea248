"""cgroup limits as the kernel enforces them, read back from the app's own cgroup files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from launcher_helpers import needs_root, status_of

from registry.launcher import cgroups
from registry.launcher.pods import find_pod

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _root() -> None:
    needs_root()


def _cgroup_file(store: Path, uuid: str, controller: str, name: str) -> str:
    pod = find_pod(store, uuid)
    directory = cgroups.app_cgroup_dir(pod.cgroup_dirs(), controller)
    assert directory is not None, f"no {controller} cgroup recorded for pod {uuid}"
    return Path(directory, name).read_text()  # (the recorded directories: str or a Path)


def test_memory_limit_oom_kills_a_greedy_app(tmp_path, tool_image, pyrkt, store) -> None:
    image = tool_image()
    uuid_file = tmp_path / "uuid"
    result = pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}",
                   str(image), "--memory=48Mi", "--", "alloc", "16", "alloc", "400")
    uuid = uuid_file.read_text().strip()
    assert "allocated 16 MB" in result.stdout  # under the limit: fine
    assert "allocated 400 MB" not in result.stdout
    assert result.returncode == 137, (result.stdout, result.stderr)  # 128 + SIGKILL
    status = status_of(pyrkt, uuid)
    assert status["app-tool"] == "137" and status["app-tool-reason"] == "oom-killed"
    [app] = json.loads(pyrkt("status", "--format=json", uuid, check=True).stdout)["apps"]
    assert app["exit_code"] == 137 and app["reason"] == "oom-killed"
    if cgroups.is_unified():
        assert _cgroup_file(store, uuid, "memory", "memory.max").strip() == str(48 * 2**20)
        events = dict(line.split() for line in
                      _cgroup_file(store, uuid, "memory", "memory.events").splitlines())
        assert int(events["oom_kill"]) >= 1
    else:
        assert int(_cgroup_file(store, uuid, "memory", "memory.limit_in_bytes")) == 48 * 2**20
        control = dict(line.split() for line in
                       _cgroup_file(store, uuid, "memory", "memory.oom_control").splitlines())
        assert int(control["oom_kill"]) >= 1
        peak = int(_cgroup_file(store, uuid, "memory", "memory.max_usage_in_bytes"))
        assert peak <= 48 * 2**20


def test_cpu_quota_throttles_a_busy_loop(tmp_path, tool_image, pyrkt, store) -> None:
    image = tool_image()
    uuid_file = tmp_path / "uuid"
    result = pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}",
                   str(image), "--cpu=250m", "--", "spin", "2", check=True)
    uuid = uuid_file.read_text().strip()
    wall, cpu = (float(part.split("=")[1]) for part in result.stdout.split()[1:3])
    stats = dict(line.split() for line in _cgroup_file(store, uuid, "cpu", "cpu.stat").splitlines())
    assert int(stats["nr_throttled"]) > 0, stats
    if cgroups.is_unified():
        used = int(stats["usage_usec"]) / 1e6
        assert _cgroup_file(store, uuid, "cpu", "cpu.max").split() == ["25000", "100000"]
    else:
        used = int(_cgroup_file(store, uuid, "cpuacct", "cpuacct.usage")) / 1e9
        assert _cgroup_file(store, uuid, "cpu", "cpu.cfs_quota_us").strip() == "25000"
    # at most a quarter of one CPU over the loop's wall time, as the kernel accounted it (the
    # lower bound only guards against a loop that did not run: a loaded host may give less)
    assert 0.05 < used / wall < 0.30, (used, wall, cpu)
    assert 0.05 < cpu / wall < 0.30, (cpu, wall)


def _read_only_hierarchy(controller: str) -> str:
    """Where a container given read-only cgroups would see `controller`'s files."""
    if cgroups.is_unified():
        return str(cgroups.CGROUP_ROOT)
    return str(cgroups.v1_mountpoints()[controller])


def test_a_limit_the_host_cannot_enforce_is_refused_before_the_pod_starts(tmp_path, tool_image,
                                                                           store) -> None:
    """In a mount namespace of the test's own, the memory hierarchy is read-only (as
    systemd-nspawn gives it to a container): --memory is an error before anything starts,
    naming the limit, the reason and the way out; --insecure-options=limits runs the pod
    unlimited, with a warning."""
    image = tool_image()
    hierarchy = _read_only_hierarchy("memory")
    script = f"mount -o remount,bind,ro {hierarchy} && exec \"$@\""

    def run(insecure: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", sys.executable, "-m",
                               "registry.cli.main", "run", "--net=none",
                               f"--insecure-options={insecure}", str(image), "--memory=32Mi",
                               "--", "alloc", "64"],
                              env=dict(os.environ, PYRKT_DIR=str(store)), capture_output=True,
                              text=True, timeout=120)

    refused = run("image")
    assert refused.returncode == 254, (refused.stdout, refused.stderr)
    [line] = [text for text in refused.stderr.splitlines() if "cannot be enforced" in text]
    assert line.startswith("pyrkt: --memory=32Mi (app tool) cannot be enforced: ")
    assert "read-only" in line and "--insecure-options=limits" in line
    assert refused.stdout == ""  # the app never ran
    assert not list((store / "pods").glob("*/*")), "the refused pod was left behind"

    allowed = run("image,limits")
    assert allowed.returncode == 0, allowed.stderr
    assert "allocated 64 MB" in allowed.stdout  # twice the limit: nothing enforced it
    assert "warning: --memory=32Mi (app tool) is NOT enforced: " in allowed.stderr
