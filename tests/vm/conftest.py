"""Fixtures of the tests that need a real systemd host with cgroup v2: one QEMU virtual machine
per test session (`systemd_vm`, see vm_harness.py), booted from the image .ci/run caches with
tests/vm/make_vm_image.sh. Boot costs ~10-30 s under TCG, so every test of the session shares
the one machine: leave it as you found it (stop your pods, use your own store).

    def test_x(systemd_vm, vm_tool_image, vm_store):
        result = systemd_vm.pyrkt("run", "--insecure-options=image", str(vm_tool_image),
                                  "--", "exit", "3", store=vm_store)
"""

from __future__ import annotations

import itertools
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from components import missing

# The launcher's helpers (the test tool and its images) are shared with tests/launcher; pytest
# puts that folder on sys.path only when it collects it, and this folder may run alone.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "launcher"))

from launcher_helpers import build_tool_binary, make_tool_image  # noqa: E402
from vm_harness import QEMU, ROOTFS_TARBALL, VM_CACHE, SystemdVM, image_dir  # noqa: E402

_booted: list[SystemdVM] = []


@pytest.fixture(scope="session")
def systemd_vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemdVM]:
    """The session's booted virtual machine (systemd PID 1, cgroup v2, no network device)."""
    if shutil.which(QEMU) is None:
        missing(f"{QEMU} is not installed (apt-get install qemu-system-x86)")
    image = image_dir()
    if image is None:
        missing(f"no cached systemd VM image under {VM_CACHE}: make it once with "
                f"tests/vm/make_vm_image.sh {ROOTFS_TARBALL} {VM_CACHE} (after "
                f"tests/launcher/make_systemd_rootfs.sh; .ci/run does both)")
    vm = SystemdVM.boot(image, share=tmp_path_factory.mktemp("vm-share"))
    _booted.append(vm)
    try:
        yield vm
    finally:
        vm.poweroff()
        vm.cleanup()


@pytest.fixture(scope="session")
def vm_tool_image(systemd_vm: SystemdVM) -> Path:
    """The launcher's test tool image (tests/launcher/tool.c), in the share: the same path
    inside the machine."""
    return make_tool_image(systemd_vm.share / "images", build_tool_binary())


_stores = itertools.count(1)


@pytest.fixture
def vm_store(systemd_vm: SystemdVM) -> Iterator[str]:
    """A fresh pyrkt store (PYRKT_DIR) on the machine's own disk for one test. Afterwards, as
    tests/launcher's `store` does, every pod left in it is stopped and collected, and a cgroup,
    veth or mount left behind fails the test (one Python run in the machine: they are slow)."""
    store = f"/var/lib/pyrkt-test/{next(_stores)}"
    systemd_vm.run("mkdir", "-p", store, check=True)
    yield store
    cleanup = Path(__file__).resolve().parents[1] / "launcher" / "store_cleanup.py"
    result = systemd_vm.run(sys.executable, str(cleanup), store, timeout=300,
                            env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0, f"the store {store} was not left clean:\n{result.stderr}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """A failing test that used the machine shows the tail of its journal and console."""
    report = yield
    if report.failed and _booted and "systemd_vm" in getattr(item, "fixturenames", ()):
        vm = _booted[-1]
        try:
            journal = vm.journal(lines=60)
        except Exception as error:  # noqa: BLE001 - the machine may be what failed
            journal = f"(no journal: {error})"
        report.sections.append(("systemd VM journal (last lines)", journal))
        report.sections.append(("systemd VM console", vm.console_tail(20)))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for vm in _booted:
        terminalreporter.write_line(f"systemd VM: booted to systemd running in "
                                    f"{vm.boot_seconds:.1f} s (QEMU TCG)")
