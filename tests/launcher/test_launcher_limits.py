"""cgroup limits as the kernel enforces them, read back from the app's own cgroup files."""

from __future__ import annotations

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
    return (directory / name).read_text()


def test_memory_limit_oom_kills_a_greedy_app(tmp_path, tool_image, pyrkt, store) -> None:
    image = tool_image()
    uuid_file = tmp_path / "uuid"
    result = pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}",
                   str(image), "--memory=48Mi", "--", "alloc", "16", "alloc", "400")
    uuid = uuid_file.read_text().strip()
    assert "allocated 16 MB" in result.stdout  # under the limit: fine
    assert "allocated 400 MB" not in result.stdout
    assert result.returncode == 137, (result.stdout, result.stderr)  # 128 + SIGKILL
    assert status_of(pyrkt, uuid)["app-tool"] == "137"
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
