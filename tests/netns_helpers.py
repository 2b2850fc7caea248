"""A network namespace of the test's own, so pods' veths, routes and NAT rules never touch the
host's network (the project's network rule).

`own_network_namespace()` moves the calling thread (pytest's) into a fresh network namespace
(`unshare -n`, then `ip link set lo up`) and back afterwards. Network namespaces are per thread:
every process the test starts from here (`pyrkt`, `ip`, `iptables`), every thread it starts and
every socket it opens live in that namespace, which dies with its last user.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def own_network_namespace() -> Iterator[Path]:
    from registry.launcher import linux

    saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        linux.unshare(linux.CLONE_NEWNET)
        try:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
            yield Path(f"/proc/{os.getpid()}/task/{threading.get_native_id()}/ns/net")
        finally:
            linux.setns(saved, linux.CLONE_NEWNET)
    finally:
        os.close(saved)


def ip(*args: str) -> str:
    """`ip ARGS` in the current (the test's) namespace; its output."""
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


def iptables_rules() -> str:
    return subprocess.run(["iptables-save"], check=True, capture_output=True, text=True).stdout
