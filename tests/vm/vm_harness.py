"""A real systemd host with cgroup v2 for the tests: a QEMU virtual machine (TCG, no KVM needed)
booting Debian's kernel on the image tests/vm/make_vm_image.sh caches, driven through the agent
(tests/vm/agent.py) on a virtio-serial port.

The machine has NO network device (`-nic none`, `-nodefaults`): the port reaches only QEMU. It
sees the host's interpreter, virtual environment and checkout read-only at the same paths, so
`vm.pyrkt(...)` runs this checkout's pyrkt with the same libraries: they come as read-only ext4
disks made with `mkfs.ext4 -d` (the interpreter's and venv's cached while unchanged, the
checkout's made at each boot), because Python's many small reads are slow over 9p under TCG.
Over virtio-9p come /usr/lib/cni (read-only) and one read-write directory (`vm.share`, the same
path inside and out) for passing files both ways.
Its disk is opened with snapshot=on: whatever a session writes is gone when QEMU exits, and the
cached image never changes.

    vm = SystemdVM.boot(image_dir, share=Path(...))
    result = vm.run("systemctl", "is-system-running", timeout=30)   # a CompletedProcess
    vm.pyrkt("run", "--insecure-options=image", str(image), "--", "exit", "3")
    vm.poweroff()
"""

from __future__ import annotations

import base64
import compileall
import ctypes
import fcntl
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
CACHE_DIR = Path(os.environ.get("PYRKT_TEST_CACHE", REPO_ROOT / ".test-cache"))
ROOTFS_TARBALL = CACHE_DIR / "debian-systemd-rootfs.tar"
VM_CACHE = CACHE_DIR / "vm"
QEMU = "qemu-system-x86_64"
QBOOT = Path("/usr/share/qemu/qboot.rom")
# Directories of the machine's own system a share must never cover (a venv made from Debian's
# python3 has base_prefix /usr: the machine's /usr holds the same Debian build of it).
PYTHON_IMAGE_FORMAT = 1  # change when python_trees() or ext4_image() change what an image holds
SYSTEM_DIRS = {Path(p) for p in ("/", "/usr", "/usr/local", "/bin", "/lib", "/etc", "/var")}


def _die_with_parent() -> None:
    """In QEMU's child before exec: SIGKILL when the test process ends however it ends (killed
    by a timeout, say), so no machine is left spinning on the host's CPUs."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(127)


class VMError(AssertionError):
    """The machine did not boot, or stopped answering; the message ends with its console."""


def image_dir() -> Path | None:
    """The cached image for the current inputs (make_vm_image.sh decides its name), or None."""
    if not ROOTFS_TARBALL.exists():
        return None
    path = subprocess.run(["sh", str(HERE / "make_vm_image.sh"), "--path", str(ROOTFS_TARBALL),
                           str(VM_CACHE)], capture_output=True, text=True, check=True).stdout.strip()
    image = Path(path)
    return image if (image / "disk.img").exists() else None


def _without_nested(paths: Iterable[Path]) -> list[Path]:
    unique = sorted({p.resolve() for p in paths if p.is_dir()} - SYSTEM_DIRS)
    return [p for p in unique if not any(p != q and p.is_relative_to(q) for q in unique)]


def python_trees() -> dict[Path, tuple[str, ...]]:
    """The interpreter and the venv, each with the parts the machine never needs."""
    trees: dict[Path, tuple[str, ...]] = {}
    base, venv = Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()
    if base not in SYSTEM_DIRS:
        stdlib = f"lib/python{sys.version_info[0]}.{sys.version_info[1]}"
        skip = [f"{stdlib}/test", f"{stdlib}/idlelib"]
        skip += [str(p.relative_to(base)) for p in (base / stdlib).glob("config-*")]
        if base != venv and not _includes_system_site_packages(venv):
            skip.append(f"{stdlib}/site-packages")  # the base's own packages, unseen by the venv
        trees[base] = tuple(skip)
    if venv != base:
        trees[venv] = ()
    return trees


def _includes_system_site_packages(venv: Path) -> bool:
    try:
        config = (venv / "pyvenv.cfg").read_text()
    except OSError:
        return False
    return "include-system-site-packages = true" in config.replace("\t", " ").lower()


def checkout_trees() -> dict[Path, tuple[str, ...]]:
    """The checkout, without its history, its venv (a tree of its own) and the test cache."""
    return {REPO_ROOT: (".git", ".venv", ".test-cache", "test-output")}


def _stage(staging: Path, trees: dict[Path, tuple[str, ...]]) -> None:
    """Each tree at its own path under `staging`, by hard links where the filesystem allows (the
    excluded parts stay as empty directories: another tree may be mounted there)."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    for root, skip in trees.items():
        target = staging / root.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        skipped = {(root / s).resolve() for s in skip}

        def ignore(directory: str, names: list[str], skipped: set[Path] = skipped) -> list[str]:
            return [n for n in names if Path(directory, n) in skipped]

        shutil.copytree(root, target, symlinks=True, ignore=ignore, copy_function=link)
        for path in skipped:
            if path.is_dir():
                (staging / path.relative_to("/")).mkdir(parents=True, exist_ok=True)


def ext4_image(out: Path, trees: dict[Path, tuple[str, ...]]) -> Path:
    """An ext4 disk image at `out` holding `trees` at their own paths (mkfs.ext4 -d, no mount).
    The machine reads it as a block device: Python's thousands of small reads then come from the
    guest's page cache, where over 9p each open costs a round trip through QEMU."""
    staging = out.with_name(out.name + ".tree")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _stage(staging, trees)
        size = files = 0
        for directory, _, names in os.walk(staging):
            for name in names:
                files += 1
                size += os.lstat(os.path.join(directory, name)).st_blocks * 512
        part = out.with_name(out.name + ".part")
        with open(part, "wb") as image:
            image.truncate(size + size // 4 + (64 << 20))
        subprocess.run(["mkfs.ext4", "-q", "-F", "-N", str(files * 2 + 4096), "-d", str(staging),
                        str(part)], check=True, capture_output=True)
        part.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def python_image() -> Path:
    """The interpreter and venv as an ext4 image, cached in VM_CACHE while they are unchanged
    (installing or removing a package changes the site-packages directory's mtime)."""
    trees = python_trees()
    stamp = []
    for root in trees:
        for directory in [root, *root.glob("lib/python*"), *root.glob("lib/python*/site-packages"),
                          root / "pyvenv.cfg"]:
            if directory.exists():
                stamp.append(f"{directory} {directory.stat().st_mtime_ns}")
    stamp.append(f"format {PYTHON_IMAGE_FORMAT}")
    key = hashlib.sha256("\n".join(stamp).encode()).hexdigest()[:16]
    out = VM_CACHE / f"python-{key}.img"
    VM_CACHE.mkdir(parents=True, exist_ok=True)
    with open(VM_CACHE / ".python.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.exists():
            ext4_image(out, trees)
            # Other checkouts' images stay a day (several worktrees may share a cache).
            for old in VM_CACHE.glob("python-*.img"):
                if time.time() - old.stat().st_mtime > 86400:
                    old.unlink(missing_ok=True)
    os.utime(out)
    return out


def shared_paths() -> list[Path]:
    """What the machine mounts read-only over 9p at the same paths: the CNI plugins."""
    return _without_nested([Path("/usr/lib/cni")])


class SystemdVM:
    """One booted machine. Requests run concurrently (each in the agent's own thread)."""

    def __init__(self, process: subprocess.Popen[bytes], workdir: Path, share: Path) -> None:
        self.process = process
        self.workdir = workdir
        self.share = share
        self.console = workdir / "console.log"
        self.boot_seconds = 0.0
        self._ids = itertools.count(1)
        self._pending: dict[int, Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._gone = False  # the agent's connection ended: no answer will ever come

    # -- starting and stopping ---------------------------------------------------------------

    @classmethod
    def boot(cls, image: Path, share: Path, memory: str = "2G", cpus: int = 2,
             timeout: float = 300) -> SystemdVM:
        """Start QEMU on `image` and return once systemd says running (or degraded)."""
        workdir = Path(tempfile.mkdtemp(prefix="pyrkt-vm-"))  # short: a unix socket lives here
        socket_path = workdir / "agent.sock"
        share = share.resolve()
        ro = shared_paths()
        # The shares are read-only in the machine, so Python could not cache what it compiles
        # there: compile the checkout here, natively, once (the rest ships compiled).
        compileall.compile_dir(str(REPO_ROOT / "registry"), quiet=1)
        disks = {"pyrkt-python": (python_image(), python_trees()),
                 "pyrkt-checkout": (ext4_image(workdir / "checkout.img", checkout_trees()),
                                    checkout_trees())}
        # qboot (Debian's qemu-system-data) loads the kernel seconds sooner than SeaBIOS
        # under TCG; SeaBIOS, QEMU's default, when it is not there.
        firmware = ["-bios", str(QBOOT)] if QBOOT.exists() else []
        command = [
            QEMU, "-accel", "tcg", "-cpu", "max", "-m", memory, "-smp", str(cpus), *firmware,
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-nic", "none",  # the network rule: no network device at all
            "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"),
            "-append", "console=ttyS0 panic=-1 systemd.unified_cgroup_hierarchy=1 "
                       # a minbase rootfs has no udev: the serial getty would wait 90 s for it
                       "systemd.mask=serial-getty@ttyS0.service",
            # The root disk's device comes first (vda, which the initramfs mounts), then the
            # read-only ones, in command line order.
            "-drive", f"file={image / 'disk.img'},format=raw,if=none,id=root,snapshot=on",
            "-device", "virtio-blk-pci,drive=root,serial=pyrkt-root",
            "-serial", f"file:{workdir / 'console.log'}",
            "-device", "virtio-serial",
            "-chardev", f"socket,path={socket_path},server=on,wait=off,id=agent",
            "-device", "virtserialport,chardev=agent,name=pyrkt.agent",
        ]
        mounts: list[tuple[str, Path, bool]] = []
        for index, path in enumerate([*ro, share]):
            tag = f"pyrkt{index}"
            readonly = path != share
            command += ["-virtfs", f"local,path={path},mount_tag={tag},security_model=none"
                                   + (",readonly=on" if readonly else "")]
            mounts.append((tag, path, readonly))
        for serial, (disk, _) in disks.items():
            command += ["-drive", f"file={disk},format=raw,if=none,id={serial},readonly=on",
                        "-device", f"virtio-blk-pci,drive={serial},serial={serial}"]
        started = time.monotonic()
        log = open(workdir / "qemu.log", "wb")
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   preexec_fn=_die_with_parent)
        log.close()
        vm = cls(process, workdir, share)
        try:
            vm._connect(socket_path, started + timeout)
            vm._wait_for_agent(started + timeout)
            vm._mount_disks({serial: list(trees) for serial, (_, trees) in disks.items()})
            vm._mount(mounts)
            state = vm.run("systemctl", "is-system-running", "--wait",
                           timeout=max(10.0, started + timeout - time.monotonic()))
            if state.stdout.strip() not in ("running", "degraded"):
                failed = vm.run("systemctl", "--failed", "--no-legend").stdout
                raise VMError(f"systemd did not finish booting ({state.stdout.strip()}); failed "
                              f"units:\n{failed}\n{vm.console_tail()}")
        except BaseException:
            vm.kill()
            raise
        vm.boot_seconds = time.monotonic() - started
        return vm

    def _connect(self, socket_path: Path, deadline: float) -> None:
        while True:
            self._check_alive()
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(socket_path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if time.monotonic() > deadline:
                    raise VMError(f"QEMU opened no agent socket\n{self.console_tail()}") from None
                time.sleep(0.1)
        self._sock = sock
        threading.Thread(target=self._read_answers, daemon=True).start()

    def _wait_for_agent(self, deadline: float) -> None:
        # Until the agent opens its port QEMU may drop what it is sent: ping again and again.
        while True:
            self._check_alive()
            future = self._send({})
            try:
                future.result(timeout=2)
                return
            except TimeoutError:
                with self._lock:
                    self._pending = {k: v for k, v in self._pending.items() if v is not future}
                if time.monotonic() > deadline:
                    raise VMError(f"the agent never answered\n{self.console_tail()}") from None

    def _mount_disks(self, disks: dict[str, list[Path]]) -> None:
        """Mount each read-only disk (found by its serial: no udev here) and bind its trees at
        their own paths, parents first."""
        binds: list[tuple[Path, str]] = []
        for serial, trees in disks.items():
            found = self.run("sh", "-c", f"grep -lx {serial} /sys/block/vd*/serial",
                             check=True).stdout.strip().split("/")[-2]
            mountpoint = f"/run/{serial}"
            self.run("mkdir", "-p", mountpoint, check=True)
            self.run("mount", "-t", "ext4", "-o", "ro,noload", f"/dev/{found}", mountpoint,
                     check=True)
            binds += [(tree, f"{mountpoint}{tree}") for tree in trees]
        for tree, source in sorted(binds, key=lambda bind: len(bind[0].parts)):
            self.run("mkdir", "-p", str(tree), check=True)
            self.run("mount", "--bind", source, str(tree), check=True)

    def _mount(self, mounts: list[tuple[str, Path, bool]]) -> None:
        for tag, path, readonly in mounts:
            # Read-only shares do not change during a session: cache them (imports over 9p
            # under TCG are otherwise slow); the read-write one is never cached.
            options = "trans=virtio,version=9p2000.L,msize=262144," + (
                "ro,cache=loose" if readonly else "cache=none")
            self.run("mkdir", "-p", str(path), check=True)
            self.run("mount", "-t", "9p", "-o", options, tag, str(path), check=True)

    def poweroff(self, timeout: float = 90) -> None:
        """Ask systemd to power off; kill QEMU if it has not exited within `timeout`."""
        if self.process.poll() is None:
            try:
                self.run("systemctl", "poweroff", "--no-block", timeout=20)
                self.process.wait(timeout=timeout)
            except (VMError, subprocess.TimeoutExpired, TimeoutError):
                pass
        self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        if self._sock is not None:
            self._sock.close()
        with self._lock:
            pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(VMError("the virtual machine is gone"))

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- requests -----------------------------------------------------------------------------

    def _send(self, request: dict[str, Any]) -> Future[dict[str, Any]]:
        future: Future[dict[str, Any]] = Future()
        with self._lock:
            if self._gone:
                raise VMError(f"the virtual machine stopped answering (QEMU "
                              f"{self.process.poll()})\n{self.console_tail()}")
            request_id = next(self._ids)
            self._pending[request_id] = future
        data = json.dumps({**request, "id": request_id}).encode() + b"\n"
        assert self._sock is not None
        try:
            self._sock.sendall(data)
        except OSError as error:
            raise VMError(f"cannot reach the agent: {error}\n{self.console_tail()}") from None
        return future

    def _read_answers(self) -> None:
        assert self._sock is not None
        stream = self._sock.makefile("rb")
        try:
            for line in stream:
                answer = json.loads(line)
                with self._lock:
                    future = self._pending.pop(answer.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(answer)
        except (OSError, ValueError):
            pass
        # The connection is gone (QEMU exited: a panic, a poweroff): nobody will answer.
        time.sleep(0.5)  # QEMU's exit status and last console lines, for the message
        with self._lock:
            self._gone = True
            pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(VMError(f"the virtual machine stopped answering (QEMU "
                                             f"{self.process.poll()})\n{self.console_tail()}"))

    def run_async(self, *argv: str, timeout: float = 60, env: dict[str, str] | None = None,
                  input: str | bytes | None = None, cwd: str | None = None,
                  text: bool = True) -> Future[subprocess.CompletedProcess[Any]]:
        """Start `argv` in the machine now; the future gives what run() would have returned."""
        request: dict[str, Any] = {"argv": list(argv), "timeout": timeout, "env": env or {},
                                   "cwd": cwd}
        if input is not None:
            raw = input.encode() if isinstance(input, str) else input
            request["stdin"] = base64.b64encode(raw).decode()
        answered = self._send(request)
        result: Future[subprocess.CompletedProcess[Any]] = Future()

        def convert(done: Future[dict[str, Any]]) -> None:
            try:
                answer = done.result()
            except BaseException as error:  # noqa: BLE001 - handed to whoever waits
                result.set_exception(error)
                return
            if answer.get("error"):
                result.set_exception(VMError(f"{argv[0]}: {answer['error']}"))
                return
            out, err = (base64.b64decode(answer[k]) for k in ("stdout", "stderr"))
            if text:
                out, err = (b.decode(errors="replace") for b in (out, err))  # type: ignore[assignment]
            if answer.get("timeout"):
                result.set_exception(subprocess.TimeoutExpired(list(argv), timeout, out, err))
            else:
                result.set_result(subprocess.CompletedProcess(list(argv), answer["rc"], out, err))

        answered.add_done_callback(convert)
        return result

    def run(self, *argv: str, timeout: float = 60, env: dict[str, str] | None = None,
            input: str | bytes | None = None, cwd: str | None = None, text: bool = True,
            check: bool = False) -> subprocess.CompletedProcess[Any]:
        """Run `argv` as root in the machine (stdin empty unless `input`); its whole process
        group is killed after `timeout` seconds and TimeoutExpired raised. With check=True a
        non-zero exit fails the test with the command's output."""
        future = self.run_async(*argv, timeout=timeout, env=env, input=input, cwd=cwd, text=text)
        try:
            result = future.result(timeout=timeout + 60)  # the agent enforces `timeout` itself
        except TimeoutError:
            self._check_alive()
            raise VMError(f"the agent did not answer {list(argv)}\n{self.console_tail()}") from None
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {result.returncode} in the VM:\n"
                                 f"{result.stdout!s}{result.stderr!s}")
        return result

    def pyrkt(self, *args: str, store: str | None = None, **kwargs: Any) -> \
            subprocess.CompletedProcess[Any]:
        """This checkout's `pyrkt` in the machine (optionally with PYRKT_DIR=store): the console
        script's module, as tests/launcher runs it."""
        env = {"PYTHONDONTWRITEBYTECODE": "1", **kwargs.pop("env", {})}
        if store is not None:
            env["PYRKT_DIR"] = store
        return self.run(sys.executable, "-m", "registry.cli.entry", *args, env=env, **kwargs)

    def wait_until(self, check: Callable[[], Any], timeout: float = 30, interval: float = 0.5,
                   what: str = "the condition") -> Any:
        """Call `check` until it returns something true (returned); fail after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not happen within {timeout}s")
            time.sleep(interval)

    # -- diagnostics --------------------------------------------------------------------------

    def _check_alive(self) -> None:
        if self.process.poll() is not None:
            qemu_log = (self.workdir / "qemu.log").read_text(errors="replace")[-2000:]
            raise VMError(f"QEMU exited with {self.process.returncode}: {qemu_log}\n"
                          f"{self.console_tail()}")

    def console_tail(self, lines: int = 40) -> str:
        try:
            text = self.console.read_text(errors="replace")
        except OSError:
            return "(no console output)"
        # systemd colours its status lines and rewrites them with carriage returns
        text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text).replace("\r", "\n")
        kept = [line for line in text.splitlines() if line.strip()]
        return "--- serial console (last lines) ---\n" + "\n".join(kept[-lines:])

    def journal(self, *args: str, lines: int = 80) -> str:
        """The tail of the machine's journal (extra journalctl arguments allowed)."""
        return self.run("journalctl", "--no-pager", "-n", str(lines), *args, timeout=60).stdout
