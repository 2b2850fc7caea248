"""Pods under the systemd stage1 on a real systemd host with cgroup v2 (the QEMU machine of
tests/vm): every pod a machine that machinectl, systemctl and journalctl -M manage, its apps'
arguments unchanged, and a pod that outlives the unit that launched it.

TCG is slow: each pod boots a minimal systemd, so the checks share few pods."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

import pytest
from launcher_helpers import build_tool_binary, busybox_files, write_image

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# What systemd would rewrite if the unit said it plainly: $ and ${} expansion, % specifiers,
# quotes, backslashes, spaces, control characters.
ODD_ARGS = ["a$$b", "${PATH}", "$HOME", "100%", "%n %i", "two words", 'q"uote', "back\\slash",
            "tab\tx", "ctl\x01x", "ünï", ";", ""]
ODD_ENV = 'x $$y ${PATH} 100% "q" \\ end'
SCRIPT = 'printf "[%s]\\n" "$@"; echo "env=[$ODD]"; sleep 600'


@pytest.fixture(scope="module")
def vm_shell_image(systemd_vm: Any) -> Path:
    """A busybox image (and the test tool) in the share, running SCRIPT."""
    files, links = busybox_files()
    files = {**files, "/bin/tool": build_tool_binary(),
             "/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "/etc/group": "root:x:0:\n"}
    return write_image(systemd_vm.share / "images" / "shell.aci", "example.com/shell", files,
                       {"exec": ["/bin/sh", "-c", SCRIPT]}, extra_dirs=("/tmp",), links=links)


def _text(message: str | list[int]) -> str:
    """journalctl's JSON gives a message with control characters as a list of its bytes."""
    return bytes(message).decode() if isinstance(message, list) else message


class Pods:
    """`pyrkt run` as units of the machine's systemd, and what the tests ask of their pods."""

    def __init__(self, vm: Any, store: str) -> None:
        self.vm, self.store = vm, store

    def launch(self, unit: str, *args: str) -> str:
        """`pyrkt run ARGS` as the unit UNIT; returns the pod's UUID. (Through a script in the
        share: systemd-run's own command line would have its $ expanded.)"""
        import sys

        uuid_file = self.vm.share / f"{unit}.uuid"
        command = [sys.executable, "-m", "registry.cli.main", "run", "--insecure-options=image",
                   f"--uuid-file-save={uuid_file}", *args]
        script = self.vm.share / f"{unit}.sh"
        script.write_text(f"export PYRKT_DIR={self.store} PYTHONDONTWRITEBYTECODE=1\n"
                          f"exec {shlex.join(command)}\n")
        self.vm.run("systemd-run", f"--unit={unit}", "/bin/sh", str(script), check=True)
        return str(self.vm.wait_until(
            lambda: uuid_file.exists() and uuid_file.read_text().strip(), timeout=120,
            what=f"the pod of {unit}"))

    def pyrkt(self, *args: str, timeout: float = 120) -> Any:
        return self.vm.pyrkt(*args, store=self.store, timeout=timeout)

    def journal(self, uuid: str) -> list[dict[str, Any]]:
        shown = self.vm.run("journalctl", "-M", f"pyrkt-{uuid}", "-o", "json",
                            "--output-fields=MESSAGE,SYSLOG_IDENTIFIER,_SYSTEMD_UNIT").stdout
        return [json.loads(row) for row in shown.splitlines()]

    def wait_logged(self, uuid: str, app: str, text: str) -> list[dict[str, Any]]:
        def logged() -> list[dict[str, Any]] | None:
            entries = self.journal(uuid)
            return entries if any(e.get("SYSLOG_IDENTIFIER") == app and
                                  text in _text(e.get("MESSAGE", "")) for e in entries) else None

        return list(self.vm.wait_until(logged, timeout=180, what=f"{app} logging {text!r}"))

    def codes(self, uuid: str) -> dict[str, str]:
        """Each app's exit code once the pod has exited."""
        status = self.pyrkt("status", "--wait", uuid, timeout=300).stdout
        lines = dict(line.split("=", 1) for line in status.splitlines())
        assert lines["state"] == "exited", status
        return {key[4:]: value for key, value in lines.items()
                if key.startswith("app-") and not key.endswith("-reason")}

    def machines(self) -> list[list[str]]:
        listed = self.vm.run("machinectl", "list", "--no-legend", check=True).stdout
        return [line.split() for line in listed.splitlines()]


def test_a_pod_of_two_apps_is_a_machine(systemd_vm, vm_tool_image, vm_shell_image,
                                        vm_store) -> None:
    pods = Pods(systemd_vm, vm_store)
    uuid = pods.launch("pyrkt-vm-run", f"--set-env=ODD={ODD_ENV}", "--net=none",
                       str(vm_tool_image), "--", "hostname", "sleep", "600", "---",
                       str(vm_shell_image), "--", "-c", SCRIPT, "sh", *ODD_ARGS)
    # each app's line awaited: the two apps start together, and either may log first
    pods.wait_logged(uuid, "tool", "hostname=")
    entries = pods.wait_logged(uuid, "shell", "env=[")  # (the journal so far: tool's too)
    machine = f"pyrkt-{uuid}"
    assert [machine, "container"] in [row[:2] for row in pods.machines()]
    # machinectl status: each app under its own unit in the machine's cgroup tree (cgroup v2)
    shown = systemd_vm.run("machinectl", "status", machine, check=True).stdout
    for fragment in ("tool.service", "/bin/tool hostname sleep 600", "shell.service",
                     "sleep 600"):
        assert fragment in shown, shown
    # journalctl -M: every app's lines, each attributed to its app
    assert {(e.get("SYSLOG_IDENTIFIER"), e.get("_SYSTEMD_UNIT")) for e in entries} >= \
        {("tool", "tool.service"), ("shell", "shell.service")}
    assert f"hostname=rkt-{uuid}" in [_text(e["MESSAGE"]) for e in entries
                                      if e.get("SYSLOG_IDENTIFIER") == "tool"]
    printed = [_text(e["MESSAGE"]) for e in entries if e.get("SYSLOG_IDENTIFIER") == "shell"]
    assert printed[:len(ODD_ARGS)] == [f"[{arg}]" for arg in ODD_ARGS], printed
    assert f"env=[{ODD_ENV}]" in printed
    logs = pods.pyrkt("logs", uuid).stdout
    assert f"tool  | hostname=rkt-{uuid}\n" in logs and "shell | [two words]\n" in logs, logs

    # The unit that ran `pyrkt run` stopped: the pod is its own unit, running and managed.
    systemd_vm.run("systemctl", "stop", "pyrkt-vm-run", check=True)
    assert pods.pyrkt("status", uuid).stdout.startswith("state=running")
    pods.pyrkt("gc", "--grace-period=0s")
    assert pods.pyrkt("status", uuid).stdout.startswith("state=running")
    assert machine in [row[0] for row in pods.machines()]
    entered = pods.pyrkt("enter", "--app=tool", uuid, "/bin/tool", "hostname")
    assert entered.stdout == f"hostname=rkt-{uuid}\n", entered.stderr

    # machinectl kill: SIGTERM to every process of the machine; each app's own end recorded
    systemd_vm.run("machinectl", "kill", machine, check=True)
    assert pods.codes(uuid) == {"tool": "143", "shell": "143"}
    systemd_vm.wait_until(lambda: machine not in [row[0] for row in pods.machines()],
                          timeout=60, what="the machine's end")
    assert "shell | [two words]\n" in pods.pyrkt("logs", uuid).stdout  # read after the end


def test_poweroff_and_sigkill_end_a_machine_with_the_apps_codes(systemd_vm, vm_tool_image,
                                                               vm_store) -> None:
    """(`systemctl stop` of the pod's unit: tests/launcher/test_launcher_systemd.py)"""
    pods = Pods(systemd_vm, vm_store)
    ways = {"poweroff": ["machinectl", "poweroff"],
            "sigkill": ["machinectl", "kill", "--signal=KILL"]}
    started = time.monotonic()
    uuids = {way: pods.launch(f"pyrkt-vm-{way}", "--net=none", str(vm_tool_image), "--",
                              "hostname", "sleep", "600") for way in ways}
    for uuid in uuids.values():
        pods.wait_logged(uuid, "tool", "hostname=")
    booted = time.monotonic() - started
    for way, uuid in uuids.items():
        systemd_vm.run(*ways[way], f"pyrkt-{uuid}", check=True, timeout=180)
    assert {way: pods.codes(uuid) for way, uuid in uuids.items()} == {
        "poweroff": {"tool": "143"}, "sigkill": {"tool": "137"}}
    print(f"two one-app machines up in {booted:.1f} s (QEMU TCG)")
