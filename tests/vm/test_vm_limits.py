"""Limits on a real systemd host with cgroup v2 (the virtual machine of tests/vm), both flavours:
an app over its --memory is OOM-killed (137, `oom-killed` in status), an app under --cpu is
throttled to its quota (measured from its cgroup's cpu.stat while it runs). And the pod's life
under a service manager: the unit that ran `pyrkt run` stopped, or `pyrkt run` killed in it.

TCG is slow (every instruction emulated), so each test runs one short pod and the tolerances
are wide where the emulator's speed shows, tight where the kernel enforces.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STAGE1S = ("builtin", "systemd")
MEMORY_LIMIT = 48 * 2**20


def _status(vm: Any, store: str, uuid: str) -> dict[str, str]:
    shown = vm.pyrkt("status", uuid, store=store, timeout=120, check=True).stdout
    return dict(line.split("=", 1) for line in shown.splitlines())


def _uuid(vm: Any, path: str, timeout: float = 120) -> str:
    return str(vm.wait_until(lambda: vm.run("cat", path).stdout.strip(), timeout=timeout,
                             what=f"{path} in the VM"))


def _app_cgroup(vm: Any, stage1: str, uuid: str, app: str = "tool") -> str:
    """The cgroup directory of the app's processes, while it runs."""
    if stage1 == "builtin":
        return f"/sys/fs/cgroup/pyrkt/{uuid}/{app}"

    def find() -> str:
        found = vm.run("find", "/sys/fs/cgroup/machine.slice", "-type", "d",
                       "-path", f"*pyrkt-{uuid}*", "-name", f"{app}.service").stdout.split()
        return found[0] if found else ""

    # a machine boots its own systemd first: minutes under TCG
    return str(vm.wait_until(find, timeout=600, interval=2, what=f"the cgroup of {app}.service"))


# One sample of the kernel's own accounting, taken in the machine: the app's CPU time over a
# stretch of wall time, and how often the quota throttled it.
SAMPLE = """
import json, sys, time
path = sys.argv[1]
def read():
    return dict(line.split() for line in open(path + "/cpu.stat"))
first, t0 = read(), time.monotonic()
time.sleep(float(sys.argv[2]))
last, t1 = read(), time.monotonic()
print(json.dumps({"rate": (int(last["usage_usec"]) - int(first["usage_usec"])) / 1e6 / (t1 - t0),
                  "nr_throttled": int(last["nr_throttled"]),
                  "cpu_max": open(path + "/cpu.max").read().split()}))
"""


@pytest.mark.parametrize("stage1", STAGE1S)
def test_memory_limit_oom_kills_the_app(systemd_vm, vm_tool_image, vm_store, stage1) -> None:
    uuid_file = f"/tmp/oom-{stage1}.uuid"
    result = systemd_vm.pyrkt("run", f"--stage1={stage1}", "--net=none",
                              "--insecure-options=image", f"--uuid-file-save={uuid_file}",
                              str(vm_tool_image), f"--memory={MEMORY_LIMIT // 2**20}Mi", "--",
                              "alloc", "16", "alloc", "64", store=vm_store, timeout=900)
    uuid = _uuid(systemd_vm, uuid_file)
    assert "allocated 16 MB" in result.stdout, (result.stdout, result.stderr)
    # 80 MB in all: over the app's 48 MiB, under the pod's ceiling (the apps' sum + 64 MiB for
    # the stage1): only the app's own limit can have stopped it
    assert "allocated 64 MB" not in result.stdout
    assert result.returncode == 137, (result.stdout, result.stderr)
    status = _status(systemd_vm, vm_store, uuid)
    assert status["state"] == "exited" and status["app-tool"] == "137", status
    assert status["app-tool-reason"] == "oom-killed", status
    document = json.loads(systemd_vm.pyrkt("status", "--format=json", uuid, store=vm_store,
                                           timeout=120, check=True).stdout)
    assert document["apps"][0]["reason"] == "oom-killed"
    if stage1 == "builtin":  # the builtin flavour's cgroup stays until gc: the kernel's word
        leaf = f"/sys/fs/cgroup/pyrkt/{uuid}/tool"
        assert systemd_vm.run("cat", f"{leaf}/memory.max", check=True).stdout.strip() == \
            str(MEMORY_LIMIT)
        assert systemd_vm.run("cat", f"{leaf}/memory.swap.max", check=True).stdout.strip() == "0"
        events = dict(line.split() for line in
                      systemd_vm.run("cat", f"{leaf}/memory.events", check=True).stdout
                      .splitlines())
        assert int(events["oom_kill"]) >= 1, events
        print(f"{stage1}: memory.events after the OOM kill: {events}")


@pytest.mark.parametrize("stage1", STAGE1S)
def test_cpu_quota_throttles_the_app(systemd_vm, vm_tool_image, vm_store, stage1) -> None:
    uuid_file = f"/tmp/cpu-{stage1}.uuid"
    spin = 30.0  # long enough to sample a stretch well inside the loop, whatever TCG's speed
    running = systemd_vm.run_async(sys.executable, "-m", "registry.cli.main", "run",
                                   f"--stage1={stage1}", "--net=none", "--insecure-options=image",
                                   f"--uuid-file-save={uuid_file}", str(vm_tool_image),
                                   "--cpu=250m", "--", "spin", str(spin), timeout=900,
                                   env={"PYRKT_DIR": vm_store, "PYTHONDONTWRITEBYTECODE": "1"})
    uuid = _uuid(systemd_vm, uuid_file)
    cgroup = _app_cgroup(systemd_vm, stage1, uuid)
    systemd_vm.wait_until(lambda: systemd_vm.run("cat", f"{cgroup}/cgroup.procs").stdout.strip(),
                          timeout=120, what="the app's process in its cgroup")
    sample = json.loads(systemd_vm.run("/usr/bin/python3", "-c", SAMPLE, cgroup, "8",
                                       timeout=120, check=True).stdout)
    result = running.result(timeout=1000)
    assert result.returncode == 0, (result.stdout, result.stderr)
    wall, cpu = (float(part.split("=")[1]) for part in result.stdout.split()[1:3])
    print(f"{stage1}: --cpu=250m: cgroup usage {sample['rate']:.3f} CPU over 8 s, "
          f"nr_throttled {sample['nr_throttled']}, cpu.max {sample['cpu_max']}; "
          f"the loop's own CPU/wall {cpu / wall:.3f} over {wall:.1f} s")
    assert sample["cpu_max"] == ["25000", "100000"]
    assert sample["nr_throttled"] > 0
    # the quota is an upper bound the kernel enforces per 100 ms period; the lower bound only
    # says the loop ran (an emulated CPU shared with other work may give it less)
    assert 0.05 < sample["rate"] <= 0.30, sample
    assert 0.05 < cpu / wall <= 0.30, (cpu, wall)


def _launch_in_unit(vm: Any, store: str, unit: str, *args: str) -> None:
    """`pyrkt run ARGS` as a service of the machine's systemd, as a user would start it."""
    vm.run("systemd-run", f"--unit={unit}", f"--setenv=PYRKT_DIR={store}",
           "--setenv=PYTHONDONTWRITEBYTECODE=1", "--", sys.executable, "-m",
           "registry.cli.main", "run", *args, check=True, timeout=120)


def test_stopping_the_launching_unit_leaves_the_pod_managed(systemd_vm, vm_tool_image,
                                                            vm_store) -> None:
    """The builtin flavour under a service manager: `systemctl stop` of the unit that ran
    `pyrkt run` stops the pod in order (its codes recorded); SIGKILL of `pyrkt run` in another
    leaves the pod running and managed (status, logs, stop), and gc never removes it meanwhile.
    (The systemd flavour's machine has a unit of its own: tests/vm/test_vm_systemd_pods.py.)"""
    for way in ("stop", "kill"):
        _launcher_gone(systemd_vm, vm_store, str(vm_tool_image), "builtin", way)


def _launcher_gone(vm: Any, store: str, image: str, stage1: str, way: str) -> None:
    unit = f"pyrkt-launch-{stage1}-{way}"
    uuid_file = f"/tmp/{unit}.uuid"
    _launch_in_unit(vm, store, unit, f"--stage1={stage1}", "--net=none",
                    "--insecure-options=image", f"--uuid-file-save={uuid_file}", image, "--",
                    "hostname", "sleep", "600")
    uuid = _uuid(vm, uuid_file)
    # the app runs (its first line is out; a machine boots its own systemd first)
    vm.wait_until(lambda: f"hostname=rkt-{uuid}" in vm.pyrkt("logs", uuid, store=store,
                                                              timeout=120).stdout,
                  timeout=600, interval=3, what=f"pod {uuid}'s app running")
    if way == "stop":
        vm.run("systemctl", "stop", unit, check=True, timeout=300)
    else:
        vm.run("systemctl", "kill", "--kill-who=main", "--signal=KILL", unit, check=True,
               timeout=60)
        vm.wait_until(lambda: vm.run("systemctl", "is-active", unit).stdout.strip() != "active",
                      timeout=120, what=f"{unit} gone")
    status = _status(vm, store, uuid)
    print(f"{stage1}, launching unit {way}: pod {status['state']}, "
          f"app-tool={status.get('app-tool')}")
    if status["state"] == "running":
        gc = vm.pyrkt("gc", "--grace-period=0s", store=store, timeout=300, check=True)
        assert uuid not in gc.stdout
        assert _status(vm, store, uuid)["state"] == "running"
        logs = vm.pyrkt("logs", uuid, store=store, timeout=120, check=True)
        assert f"hostname=rkt-{uuid}" in logs.stdout
        vm.pyrkt("stop", uuid, store=store, timeout=300, check=True)
        status = _status(vm, store, uuid)
    assert status["state"] == "exited" and status["app-tool"] == "143", status
    assert "finished" in status
