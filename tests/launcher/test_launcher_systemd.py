"""The systemd stage1 where systemd-nspawn exists but systemd is not PID 1 (this host), and under
a real systemd booted in a container when a cached Debian rootfs with systemd is available."""

from __future__ import annotations

import json
import os
import shlex
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
    quota = Path(cpu_dir, "cpu.max" if is_unified() else "cpu.cfs_quota_us").read_text().split()[0]
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


# What reaches the app unchanged under the systemd stage1 (systemd would expand $ and %, and
# split or unescape the rest, if the unit said them plainly).
ODD_ARGS = ["a$$b", "${PATH}", "$HOME", "100%", "%n %i", "two words", 'q"uote', "back\\slash",
            "tab\tx", "ctl\x01x", "ünï", ";", ""]
ODD_ENV = "x $$y ${PATH} 100% \"q\" \\ end"


def _text(message: str | list[int]) -> str:
    """journalctl's JSON gives a message with control characters as a list of its bytes."""
    return bytes(message).decode() if isinstance(message, list) else message


@pytest.mark.slow
@pytest.mark.timeout(1800)  # boots a whole Debian with systemd inside a container
def test_under_a_booted_systemd(tmp_path, tool_image, shell_image, tool_binary) -> None:
    """`pyrkt run` inside a container booted with systemd: every pod a machine (machinectl,
    journalctl -M, kill/poweroff/stop codes), arguments unchanged, the launching unit stopped."""
    if not BOOT_TARBALL.exists():
        missing(f"no cached Debian rootfs with systemd at {BOOT_TARBALL}: make it once with "
                    f"tests/launcher/make_systemd_rootfs.sh (debootstrap needs a Debian mirror; "
                    f"the tests themselves never reach the network)")
    root = tmp_path / "os"
    root.mkdir()
    subprocess.run(["tar", "-xf", str(BOOT_TARBALL), "-C", str(root)], check=True)
    shutil.copy2(tool_image(), root / "opt" / "tool.aci")
    shutil.copy2(tool_image("example.com/web", app={"ports": [
        {"name": "http", "protocol": "tcp", "port": 8080}]}), root / "opt" / "web.aci")
    shutil.copy2(tool_binary, root / "opt" / "tool")
    script = 'printf "[%s]\\n" "$@"; echo "env=[$ODD]"; sleep 600'
    shutil.copy2(shell_image(script), root / "opt" / "shell.aci")
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

        def enter(*command: str) -> list[str]:
            return ["nsenter", f"--target={leader}", "--mount", "--uts", "--ipc", "--net",
                    "--pid", "--cgroup", "--", "env", "PYTHONDONTWRITEBYTECODE=1", *command]

        def inside(*command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
            return subprocess.run(enter(*command), capture_output=True, text=True,
                                  timeout=timeout)

        deadline = time.monotonic() + 90
        while inside("systemctl", "is-system-running").stdout.strip() not in ("running",
                                                                             "degraded"):
            assert time.monotonic() < deadline, "the container's systemd did not finish booting"
            time.sleep(0.5)
        pyrkt = [sys.executable, "-m", "registry.cli.entry"]

        def launch(unit: str, *args: str) -> str:
            """`pyrkt run ARGS` as the unit UNIT of the container's systemd; the pod's UUID.
            (Through a script: systemd-run's own command line would have its $ expanded.)"""
            command = [*pyrkt, "run", "--insecure-options=image",
                       f"--uuid-file-save=/run/{unit}", *args]
            (root / "var" / "tmp" / f"{unit}.sh").write_text(shlex.join(command) + "\n")
            started = inside("systemd-run", f"--unit={unit}", "/bin/sh", f"/var/tmp/{unit}.sh")
            assert started.returncode == 0, started.stderr
            deadline = time.monotonic() + 30
            while not inside("cat", f"/run/{unit}").stdout.strip():
                assert time.monotonic() < deadline, inside("journalctl", "-u", unit).stdout
                time.sleep(0.2)
            return inside("cat", f"/run/{unit}").stdout.strip()

        def app_codes(uuid: str) -> dict[str, str]:
            status = inside(*pyrkt, "status", "--wait", uuid, timeout=120).stdout
            lines = dict(line.split("=", 1) for line in status.splitlines())
            assert lines["state"] == "exited", status
            return {k[4:]: v for k, v in lines.items() if k.startswith("app-")}

        def journal_of(uuid: str) -> str:
            return inside("journalctl", "-M", f"pyrkt-{uuid}", "-o", "json",
                          "--output-fields=MESSAGE,SYSLOG_IDENTIFIER,_SYSTEMD_UNIT").stdout

        def wait_for(uuid: str, text: str) -> None:
            deadline = time.monotonic() + 60
            while text not in journal_of(uuid):
                assert time.monotonic() < deadline, inside("journalctl", "--no-pager").stdout
                time.sleep(0.2)

        # 1. A pod of two apps is a machine; its apps log to its journal, each as itself.
        uuid = launch("pyrkt-test-run", "--net=default-restricted", f"--set-env=ODD={ODD_ENV}",
                      "/opt/tool.aci", "--", "hostname", "sleep", "600", "---",
                      "/opt/shell.aci", "--", "-c", script, "sh", *ODD_ARGS)
        wait_for(uuid, "env=[")
        listed = inside("machinectl", "list", "--no-legend").stdout
        assert any(line.split()[:2] == [f"pyrkt-{uuid}", "container"]
                   for line in listed.splitlines()), listed
        unit = f"pyrkt-{uuid}.scope"
        assert inside("systemctl", "show", "-p", "Slice", unit).stdout.strip() == \
            "Slice=machine.slice"
        shown = inside("machinectl", "status", f"pyrkt-{uuid}").stdout
        assert "/bin/tool hostname sleep 600" in shown and "sleep 600" in shown, shown
        entries = [json.loads(row) for row in journal_of(uuid).splitlines()]
        by_app = {(e.get("SYSLOG_IDENTIFIER"), e.get("_SYSTEMD_UNIT")): e for e in entries}
        assert ("tool", "tool.service") in by_app and ("shell", "shell.service") in by_app
        printed = [_text(e["MESSAGE"]) for e in entries if e.get("SYSLOG_IDENTIFIER") == "shell"]
        assert printed[:len(ODD_ARGS)] == [f"[{arg}]" for arg in ODD_ARGS], printed
        assert f"env=[{ODD_ENV}]" in printed
        shown_status = inside(*pyrkt, "status", uuid)
        running = shown_status.stdout
        assert running.startswith("state=running"), shown_status.stderr
        assert "networks=default-restricted:ip4=172.16.29." in running
        logs = inside(*pyrkt, "logs", uuid).stdout
        assert f"tool  | hostname=rkt-{uuid}\n" in logs and "shell | [two words]\n" in logs
        entered = inside(*pyrkt, "enter", "--app=tool", uuid, "/bin/tool", "hostname")
        assert entered.stdout == f"hostname=rkt-{uuid}\n", entered.stderr
        entered = inside(*pyrkt, "enter", "--app=shell", uuid, "/bin/sh", "-c", "echo $0")
        assert entered.stdout == "/bin/sh\n", entered.stderr

        # 2. The unit that ran `pyrkt run` stopped: the pod goes on, managed.
        assert inside("systemctl", "stop", "pyrkt-test-run").returncode == 0
        assert inside(*pyrkt, "status", uuid).stdout.startswith("state=running")
        assert f"pyrkt-{uuid}" in inside("machinectl", "list").stdout
        inside(*pyrkt, "gc", "--grace-period=0s")
        assert inside(*pyrkt, "status", uuid).stdout.startswith("state=running")
        assert "tool  | hostname" in inside(*pyrkt, "logs", uuid).stdout

        # 3. machinectl kill: every app ends by SIGTERM, and says so.
        assert inside("machinectl", "kill", f"pyrkt-{uuid}").returncode == 0
        assert app_codes(uuid) == {"tool": "143", "shell": "143"}
        deadline = time.monotonic() + 30
        while f"pyrkt-{uuid}" in inside("machinectl", "list").stdout:
            assert time.monotonic() < deadline, "the machine did not go away"
            time.sleep(0.2)
        assert "shell | [two words]\n" in inside(*pyrkt, "logs", uuid).stdout  # after its end

        # 4. machinectl poweroff, pyrkt stop, a SIGKILL: 143, 143, 137.
        # (the one pyrkt stops also serves a port: the supervisor's userspace forwarder)
        for number, how in enumerate((("machinectl", "poweroff"), ("pyrkt-stop",),
                                      ("machinectl", "kill", "--signal=KILL"))):
            if how == ("pyrkt-stop",):
                uuid = launch(f"pyrkt-test-{number}", "--net=none",
                              "--port=http:127.0.0.1:18080", "/opt/web.aci", "--", "serve",
                              "8080", "hello-over-the-port")
                wait_for(uuid, "serving on 8080")
                assert inside("/opt/tool", "client", "18080").stdout == \
                    "client got: hello-over-the-port\n"
            else:
                uuid = launch(f"pyrkt-test-{number}", "--net=none", "/opt/tool.aci", "--",
                              "hostname", "sleep", "600")
                wait_for(uuid, "hostname=")
            if "--signal=KILL" in how:  # nobody left to record the end but the pod's own
                assert inside("systemctl", "stop", f"pyrkt-test-{number}").returncode == 0
            command = [*pyrkt, "stop", uuid] if how == ("pyrkt-stop",) else \
                [*how, f"pyrkt-{uuid}"]
            assert inside(*command).returncode == 0
            expected = "137" if "--signal=KILL" in how else "143"
            assert app_codes(uuid) == {"web" if how == ("pyrkt-stop",) else "tool": expected}

        # 5. In the foreground, the output comes as the app writes it; the code is the app's.
        run = subprocess.Popen(enter(*pyrkt, "run", "--insecure-options=image", "--net=none",
                                     "/opt/tool.aci", "--", "hostname", "sleep", "3", "exit",
                                     "7"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert run.stdout is not None
        first = run.stdout.readline()
        assert first.startswith(b"hostname=rkt-") and run.poll() is None
        assert run.wait(timeout=60) == 7
    finally:
        boot.terminate()  # nspawn asks the container's systemd to power off
        try:
            boot.wait(timeout=60)
        except subprocess.TimeoutExpired:
            boot.kill()
            boot.wait()
