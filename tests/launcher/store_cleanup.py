"""The launcher tests' check that a store is left clean: every pod stopped and collected, and
no cgroup, veth or mount of theirs left behind. Used after each test by tests/launcher's `store`
fixture and, inside the virtual machine, by tests/vm's `vm_store` (this module imports neither
pytest nor anything the machine lacks: starting Python there is slow)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def clean_store(directory: Path) -> None:
    """Stop and collect every pod of the store; fail if a pod, cgroup, veth or mount is left."""
    from registry.launcher import manage
    from registry.launcher.pods import list_pods

    for pod in list_pods(directory):
        if pod.is_running:
            try:
                manage.stop(directory, pod.uuid, force=True)
            except Exception:  # noqa: BLE001 - best effort, checked below
                pass
    deadline = time.monotonic() + 10
    while any(p.is_running for p in list_pods(directory)) and time.monotonic() < deadline:
        time.sleep(0.1)
    cgroup_dirs = [d for pod in list_pods(directory) for d in pod.cgroup_dirs()]
    manage.gc(directory, grace_period=0, expire_prepared=0)
    for pod in list_pods(directory):
        if not pod.is_running:
            manage.destroy(pod)
    leftovers = [d for d in cgroup_dirs if os.path.exists(d)]
    assert not leftovers, f"cgroups left behind: {leftovers}"
    assert not list(Path(directory, "pods").glob("*/*")), "pods left behind"
    if os.geteuid() == 0:  # and no pod's veth (the plugins name the host side veth<hex>)
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        veths = [line for line in links.splitlines() if line.split(":")[1].strip()[:4] == "veth"]
        assert not veths, f"veths left behind: {veths}"
    mounts = Path("/proc/self/mountinfo").read_text()
    assert f"{directory}/" not in mounts, "mounts (a pod's netns?) left under the store"


if __name__ == "__main__":  # python store_cleanup.py STORE (in tests/vm's machine)
    clean_store(Path(sys.argv[1]))
