"""The test host of tests/vm itself: a QEMU virtual machine whose PID 1 is systemd, on cgroup v2
with the cpu, memory and pids controllers, without any network device, running this checkout's
pyrkt under both stage1 flavours."""

from __future__ import annotations

import subprocess

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_systemd_is_pid1_and_running(systemd_vm) -> None:
    assert systemd_vm.run("cat", "/proc/1/comm", check=True).stdout == "systemd\n"
    state = systemd_vm.run("systemctl", "is-system-running").stdout.strip()
    assert state in ("running", "degraded"), systemd_vm.run("systemctl", "--failed").stdout
    assert systemd_vm.run("uname", "-r", check=True).stdout.strip().endswith("-amd64")


def test_cgroup_v2_with_cpu_memory_pids(systemd_vm) -> None:
    assert systemd_vm.run("stat", "-f", "-c", "%T", "/sys/fs/cgroup",
                          check=True).stdout.strip() == "cgroup2fs"
    root = "/sys/fs/cgroup"
    controllers = systemd_vm.run("cat", f"{root}/cgroup.controllers", check=True).stdout.split()
    assert {"cpu", "memory", "pids"} <= set(controllers)
    # A cgroup of the test's own: its children can be given the three controllers.
    systemd_vm.run("sh", "-c", f"echo +cpu +memory +pids > {root}/cgroup.subtree_control",
                   check=True)
    group = f"{root}/pyrkt-vm-smoke"
    systemd_vm.run("mkdir", "-p", group, check=True)
    try:
        systemd_vm.run("sh", "-c", f"echo +cpu +memory +pids > {group}/cgroup.subtree_control",
                       check=True)
        enabled = systemd_vm.run("cat", f"{group}/cgroup.subtree_control", check=True).stdout
        assert {"cpu", "memory", "pids"} <= set(enabled.split())
    finally:
        systemd_vm.run("rmdir", group)


def test_agent_bytes_and_daemons(systemd_vm) -> None:
    """What a test sends and gets back is byte for byte; a command's answer comes when it
    exits, even if a process it left behind still holds its output open."""
    import time

    data = bytes(range(256)) * 3
    assert systemd_vm.run("cat", input=data, text=False, check=True).stdout == data
    started = time.monotonic()
    left = systemd_vm.run("sh", "-c", "sleep 120 & echo $!; echo done >&2", check=True)
    assert time.monotonic() - started < 60 and left.stderr == "done\n"
    systemd_vm.run("kill", left.stdout.strip(), check=True)
    timed_out = False
    try:
        systemd_vm.run("sleep", "30", timeout=1)
    except subprocess.TimeoutExpired:
        timed_out = True
    assert timed_out


def test_no_network_device(systemd_vm) -> None:
    """The network rule: the machine has a loopback interface and nothing else."""
    links = systemd_vm.run("ls", "/sys/class/net", check=True).stdout.split()
    assert links == ["lo"]


def test_shares_and_modules(systemd_vm) -> None:
    """The checkout is read-only at its own path, the share is read-write both ways, and the
    kernel's modules load (overlayfs, veth: what pods need)."""
    import sys
    from pathlib import Path

    from vm_harness import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text()
    assert systemd_vm.run("cat", str(REPO_ROOT / "README.md"), check=True).stdout == readme
    assert systemd_vm.run("touch", str(REPO_ROOT / "x")).returncode != 0
    (systemd_vm.share / "in").write_text("from the host")
    systemd_vm.run("sh", "-c", f"cat {systemd_vm.share}/in > {systemd_vm.share}/out", check=True)
    assert (systemd_vm.share / "out").read_text() == "from the host"
    version = systemd_vm.run(sys.executable, "-c", "import sys, registry; print(sys.version)",
                             check=True).stdout
    assert version.strip() == sys.version
    # The kernel asks /sbin/modprobe for what it lacks (kmod, with the image's modules.dep).
    modprobe = systemd_vm.run("cat", "/proc/sys/kernel/modprobe", check=True).stdout.strip()
    assert systemd_vm.run("test", "-x", modprobe).returncode == 0
    systemd_vm.run("ip", "link", "add", "smoke0", "type", "veth", "peer", "name", "smoke1",
                   check=True)  # veth is loaded on demand
    systemd_vm.run("ip", "link", "del", "smoke0", check=True)
    assert systemd_vm.run("iptables", "-t", "nat", "-L", "-n").returncode == 0
    assert Path(sys.prefix).exists()


@pytest.mark.parametrize("stage1", ["builtin", "systemd"])
def test_pod_runs_in_the_vm(systemd_vm, vm_tool_image, vm_store, stage1) -> None:
    """The default network too: ptp's veth and iptables' masquerading, all inside the machine."""
    result = systemd_vm.pyrkt("run", f"--stage1={stage1}", "--insecure-options=image",
                              f"--uuid-file-save={vm_store}/uuid", str(vm_tool_image), "--",
                              "hostname", "cat", "/proc/self/cgroup", "exit", "3",
                              store=vm_store, timeout=300)
    uuid = systemd_vm.run("cat", f"{vm_store}/uuid", check=True).stdout.strip()
    assert result.returncode == 3, result.stderr
    assert f"hostname=rkt-{uuid}" in result.stdout
    status = systemd_vm.pyrkt("status", uuid, store=vm_store, check=True, timeout=120).stdout
    assert "state=exited" in status and "app-tool=3" in status, status
