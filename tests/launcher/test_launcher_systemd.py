"""The systemd stage1 where systemd-nspawn exists but systemd is not PID 1 (this host), and under
a real systemd booted in a container when a cached Debian rootfs with systemd is available."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from components import missing
from launcher_helpers import CACHE_DIR, REPO_ROOT, needs_root, status_of

pytestmark = [pytest.mark.root, pytest.mark.e2e]


@pytest.fixture(autouse=True)
def _root() -> None:
    needs_root()
    if shutil.which("systemd-nspawn") is None:
        missing("systemd-nspawn is not installed (apt-get install systemd-container)")


def test_nspawn_flavour_without_systemd_pid1(tmp_path, tool_image, pyrkt, store) -> None:
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd is PID 1 here: the unit path is tested by the booted-systemd test")
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "given").write_text("host file")
    image = tool_image()
    uuid_file = tmp_path / "uuid"
    result = pyrkt("run", "--stage1=systemd", "--insecure-options=image", "--set-env=FOO=bar",
                   f"--uuid-file-save={uuid_file}", f"--volume=ro,kind=host,source={ro},readOnly=true",
                   str(image), "--mount=volume=ro,target=/ro", "--cpu=500m", "--", "env", "FOO",
                   "hostname", "cat", "/ro/given", "write", "/ro/x", "y", "exit", "5")
    uuid = uuid_file.read_text().strip()
    assert result.returncode == 5, result.stderr
    assert f"env FOO=bar\nhostname=rkt-{uuid}\ncat /ro/given: host file\n" in result.stdout
    assert "write /ro/x: Read-only file system" in result.stdout and not (ro / "x").exists()
    status = status_of(pyrkt, uuid)
    assert status["state"] == "exited" and status["app-tool"] == "5"
    assert "env FOO=bar" in pyrkt("logs", uuid, check=True).stdout
    from registry.launcher.cgroups import app_cgroup_dir, is_unified
    from registry.launcher.pods import find_pod

    cpu_dir = app_cgroup_dir(find_pod(store, uuid).cgroup_dirs(), "cpu")
    assert cpu_dir is not None
    quota = (cpu_dir / ("cpu.max" if is_unified() else "cpu.cfs_quota_us")).read_text().split()[0]
    assert quota == "50000"
    assert str(store) not in Path("/proc/self/mountinfo").read_text()  # overlay unmounted


BOOT_TARBALL = CACHE_DIR / "debian-systemd-rootfs.tar"


def _leader_of(nspawn_pid: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text().split()
        except OSError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise AssertionError("systemd-nspawn --boot started no init")


@pytest.mark.slow
@pytest.mark.timeout(1800)  # boots a whole Debian with systemd inside a container
def test_under_a_booted_systemd(tmp_path, tool_image) -> None:
    """`pyrkt run` inside a container booted with systemd: machinectl, journal, stop."""
    if not BOOT_TARBALL.exists():
        missing(f"no cached Debian rootfs with systemd at {BOOT_TARBALL}: make it once with "
                    f"tests/launcher/make_systemd_rootfs.sh (debootstrap needs a Debian mirror; "
                    f"the tests themselves never reach the network)")
    root = tmp_path / "os"
    root.mkdir()
    subprocess.run(["tar", "-xf", str(BOOT_TARBALL), "-C", str(root)], check=True)
    shutil.copy2(tool_image(), root / "opt" / "tool.aci")
    # The container runs this very interpreter and checkout (same Debian release as the host's
    # libc), bound read-only at the same paths.
    # The host's CNI plugins too: the pod joins default-restricted (ptp, no masquerading, so the
    # container needs no iptables), in the network namespace of the booted container.
    binds = {str(Path(p).resolve()) for p in (sys.base_prefix, sys.prefix, REPO_ROOT,
                                              "/usr/lib/cni")}
    machine = f"pyrkt-boot-{os.getpid()}"
    boot = subprocess.Popen(["systemd-nspawn", "--quiet", "--boot", "--private-network",
                             "--register=no", "--keep-unit", f"--machine={machine}",
                             f"--directory={root}", *[f"--bind-ro={b}" for b in sorted(binds)]],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        leader = _leader_of(boot.pid)

        def inside(*command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["nsenter", f"--target={leader}", "--mount", "--uts", "--ipc",
                                   "--net", "--pid", "--", "env", "PYTHONDONTWRITEBYTECODE=1",
                                   *command], capture_output=True, text=True, timeout=timeout)

        deadline = time.monotonic() + 90
        while inside("systemctl", "is-system-running").stdout.strip() not in ("running",
                                                                             "degraded"):
            assert time.monotonic() < deadline, "the container's systemd did not finish booting"
            time.sleep(0.5)
        pyrkt = [sys.executable, "-m", "registry.cli.main"]
        started = inside("systemd-run", "--unit=pyrkt-test-run", *pyrkt, "run",
                         "--insecure-options=image", "--uuid-file-save=/run/pod-uuid",
                         "--net=default-restricted", "/opt/tool.aci", "--", "hostname",
                         "sleep", "600")
        assert started.returncode == 0, started.stderr
        deadline = time.monotonic() + 30
        while not inside("cat", "/run/pod-uuid").stdout.strip():
            assert time.monotonic() < deadline, inside("journalctl", "-u", "pyrkt-test-run").stdout
            time.sleep(0.2)
        uuid = inside("cat", "/run/pod-uuid").stdout.strip()
        unit = f"pyrkt-{uuid}.service"
        deadline = time.monotonic() + 30
        while f"hostname=rkt-{uuid}" not in inside("journalctl", "-o", "cat",
                                                   f"_SYSTEMD_UNIT={unit}").stdout:
            assert time.monotonic() < deadline, inside("journalctl", "--no-pager").stdout[-3000:]
            time.sleep(0.2)
        assert f"pyrkt-{uuid}" in inside("machinectl", "list").stdout
        assert inside("systemctl", "show", "-p", "Slice", unit).stdout.strip() == \
            "Slice=machine.slice"
        running = inside(*pyrkt, "status", uuid).stdout
        assert running.startswith("state=running")
        assert "networks=default-restricted:ip4=172.16.29." in running
        assert f"hostname=rkt-{uuid}" in inside(*pyrkt, "logs", uuid).stdout
        entered = inside(*pyrkt, "enter", uuid, "/bin/tool", "hostname")
        assert entered.stdout == f"hostname=rkt-{uuid}\n", entered.stderr
        assert inside(*pyrkt, "stop", uuid).returncode == 0
        deadline = time.monotonic() + 30
        while inside("systemctl", "is-active", unit).stdout.strip() == "active":
            assert time.monotonic() < deadline, "pyrkt stop did not end the unit"
            time.sleep(0.2)
        assert f"pyrkt-{uuid}" not in inside("machinectl", "list").stdout
        status = inside(*pyrkt, "status", "--wait", uuid).stdout
        assert "state=exited" in status
    finally:
        boot.terminate()  # nspawn asks the container's systemd to power off
        try:
            boot.wait(timeout=60)
        except subprocess.TimeoutExpired:
            boot.kill()
            boot.wait()
