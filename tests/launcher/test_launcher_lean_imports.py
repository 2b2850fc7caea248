"""What the launcher's lower modules cost a start, and the plain-string paths they moved to.

`pyrkt run` loads the stage1's modules (namespaces, cgroups, limits, logs, the pod init, the
sandbox, capabilities, seccomp, the pod's network files), and every standard-library module
they import at load time is paid by every run: typing ~2 ms, pathlib ~6 ms (with re, fnmatch,
urllib.parse and ipaddress), json ~7 ms with re and enum, signal (enum). `pyrkt list` and
`status` load the network records of every pod, and the CNI ones for a pod with networks.

Checked twice, as the client's modules are (tests/client/test_client_lean_imports.py): their
own top-level imports, read statically (what another module still loads cannot hide a
regression here), and a fresh interpreter importing them, for what they load at run time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from module_probe import top_level_imports

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "registry" / "launcher"
# the run path's lower modules (host and none networks), then the CNI ones (networks only)
RUN_PATH = ("cgroups", "limits", "logs", "rootfs", "sandbox", "podinit", "capabilities",
            "seccomp", "linux", "quantities", "network/__init__", "network/dns", "network/info",
            "network/plan", "network/pod")
CNI = ("network/cni", "network/config")
NOT_AT_LOAD = ("typing", "collections", "contextlib", "functools", "json", "re", "enum",
               "signal", "pathlib", "dataclasses", "subprocess", "decimal", "socket",
               "threading", "shutil", "tempfile", "ctypes", "struct")


@pytest.mark.parametrize("name", RUN_PATH + CNI)
def test_module_imports_no_costly_standard_library_at_load(name: str) -> None:
    path = LAUNCHER / f"{name}.py"
    costly = sorted(m for m in top_level_imports(path) if m.split(".")[0] in NOT_AT_LOAD)
    assert costly == [], f"{name} imports {costly} when it loads"
    source = path.read_text()
    if "if TYPE_CHECKING:" in source:  # what keeps those imports out (mypy reads it as True)
        assert "\nTYPE_CHECKING = False" in source, name


def _loaded_by(modules: str) -> set[str]:
    code = f"import sys\nimport {modules}\nprint(' '.join(sorted(sys.modules)))\n"
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          check=True, timeout=60, cwd=ROOT)
    return set(done.stdout.split())


def test_importing_the_stage1s_lower_half_loads_none_of_them() -> None:
    names = ", ".join("registry.launcher." + n.replace("/", ".").removesuffix(".__init__")
                      for n in RUN_PATH)
    loaded = _loaded_by(names)
    assert "registry.launcher.sandbox" in loaded and "registry.launcher.network.pod" in loaded
    assert sorted(m for m in loaded if m.split(".")[0] in (*NOT_AT_LOAD, "fnmatch", "urllib",
                                                            "ipaddress")) == []
    # what they do use instead, and need (ctypes' C module without its Python layer: linux)
    assert "_signal" in loaded and "_ctypes" in loaded


def test_the_cni_records_load_without_subprocess_dataclasses_or_pathlib() -> None:
    """`pyrkt list` and `status` read every CNI pod's addresses through network.cni."""
    loaded = _loaded_by("registry.launcher.network.cni, registry.launcher.network.info")
    assert "ipaddress" in loaded  # the addresses themselves
    assert sorted(m for m in loaded if m.split(".")[0] in (
        "subprocess", "dataclasses", "inspect", "pathlib", "json", "re", "typing", "signal",
        "enum", "threading")) == []


# -- the paths, now plain strings ---------------------------------------------------------------

def test_resolve_in_root_keeps_inside_and_answers_in_the_roots_kind(tmp_path: Path) -> None:
    from registry.launcher.rootfs import resolve_in_root

    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "data").symlink_to("/etc")  # absolute: inside the root, never the host's /etc
    (root / "etc" / "up").symlink_to("../../..")  # climbing stops at the root
    (root / "loop").symlink_to("loop")
    assert resolve_in_root(str(root), "/data/hosts") == str(root / "etc" / "hosts")
    assert resolve_in_root(root, "/data/hosts") == root / "etc" / "hosts"
    assert isinstance(resolve_in_root(root, "/data"), Path)  # (callers that still pass Path)
    assert resolve_in_root(f"{root}/", "etc/up/etc/./x") == str(root / "etc" / "x")
    assert resolve_in_root(str(root), "/../../etc") == str(root / "etc")
    made = resolve_in_root(str(root), "/var/lib/app", create_dirs=True)
    assert made == str(root / "var" / "lib" / "app") and os.path.isdir(made)
    assert oct(os.stat(made).st_mode & 0o777) == oct(0o755 & ~_umask())
    with pytest.raises(OSError, match="too many symlinks"):
        resolve_in_root(str(root), "/loop/x")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_cgroup_dirs_given_as_str_or_path(tmp_path: Path) -> None:
    from registry.launcher import cgroups

    base = tmp_path / "memory"
    pod = base / "pyrkt" / "0123"
    (pod / "app").mkdir(parents=True)
    (pod / "app" / "cgroup.procs").write_text("12\n34\n")
    (pod / "app" / "memory.events").write_text("low 0\nhigh 0\noom 1\noom_kill 1\n")
    assert cgroups.pids_in([pod / "app"]) == {12, 34} == cgroups.pids_in([str(pod / "app")])
    assert cgroups._is_below(str(pod / "app"), str(base))
    assert cgroups._is_below(pod, f"{base}/")
    assert not cgroups._is_below(str(tmp_path / "memory2" / "x"), str(base))  # not a prefix
    (pod / "app" / "cgroup.procs").unlink()
    (pod / "app" / "memory.events").unlink()
    cgroups.remove([pod / "app", str(pod)])
    assert not pod.exists() and (base / "pyrkt").is_dir()  # pyrkt/ is shared: it stays


def test_log_index_beside_a_log_named_by_str_or_path(tmp_path: Path) -> None:
    from registry.launcher.logs import AppLog, LogWriter

    writer = LogWriter(tmp_path / "log")
    writer.write(b"one\ntw", when=100.0)
    writer.write(b"o\n", when=200.0)
    writer.close()
    assert (tmp_path / "log.times").read_text() == "100.000000 0\n200.000000 6\n"
    lines = AppLog("app", str(tmp_path / "log"), 0.0).read(final=True)
    assert [(line.when, line.data) for line in lines] == [(100.0, b"one\n"), (100.0, b"two\n")]


def test_default_signals_for_exec_with_the_plain_numbers() -> None:
    """Python ignores SIGPIPE; an app exec'd as it is would never die of a closed pipe."""
    import signal

    from registry.launcher import linux

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
            linux.default_signals_for_exec()
            state = (signal.getsignal(signal.SIGPIPE), signal.getsignal(signal.SIGUSR1),
                     signal.pthread_sigmask(signal.SIG_BLOCK, set()))
            os.write(write_end, repr(state).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 4096).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert answer == repr((signal.SIG_DFL, signal.SIG_DFL, set()))


def test_loopback_up_without_the_socket_module() -> None:
    """`--net=none`: the holder brings up the pod's loopback after its fork, on the way to the
    apps (socket.py would load enum, selectors and collections there)."""
    from launcher_helpers import needs_root

    needs_root()
    code = ("import sys\nfrom registry.launcher import linux\nlinux.loopback_up()\n"
            "print('socket' in sys.modules, 'enum' in sys.modules)\nimport subprocess\n"
            "print(subprocess.run(['ip', '-o', 'link', 'show', 'lo'], capture_output=True, "
            "text=True, check=True).stdout)\n")
    # a network namespace of the test's own: only its loopback is touched
    done = subprocess.run(["unshare", "-n", sys.executable, "-S", "-c", code], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded, link = done.stdout.split("\n", 1)
    assert loaded == "False False"
    assert "<LOOPBACK,UP,LOWER_UP>" in link


def test_the_c_calls_over_ctypes_own_c_module() -> None:
    """registry.launcher.linux calls the C library through `_ctypes` alone: errno and the
    message come back as they did through ctypes, memory is written where asked."""
    import ctypes
    import errno

    from registry.launcher import linux

    with pytest.raises(OSError) as refused:  # EINVAL or EPERM: never a silent success
        linux.unshare(-1)
    assert refused.value.errno in (errno.EINVAL, errno.EPERM)
    assert str(refused.value).endswith(f"unshare: {os.strerror(refused.value.errno)}")
    with pytest.raises(OSError) as missing:
        linux.umount("/nonexistent/pyrkt-test")
    assert missing.value.errno in (errno.ENOENT, errno.EPERM)
    assert "umount /nonexistent/pyrkt-test: " in str(missing.value)
    buffer = ctypes.create_string_buffer(b"x" * 16)
    linux.write_memory(ctypes.addressof(buffer) + 2, b"abc")
    linux.zero_memory(ctypes.addressof(buffer) + 10, 3)
    assert buffer.raw == b"xxabcxxxxx\0\0\0xxx\0"
    # a 64-bit value (an address) passes whole, and a bytes object as its buffer: strlen(3)
    assert linux.libc.strlen(b"pyrkt-init") == 10
