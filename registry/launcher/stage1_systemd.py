"""The systemd stage1: the pod's app runs under `systemd-nspawn`.

- systemd is PID 1: a transient service `pyrkt-<uuid>.service` in `machine.slice`
  (`systemd-run --slice=machine -p MemoryMax=... -p CPUQuota=...`) runs `systemd-nspawn
  --register=yes --machine=pyrkt-<uuid>`; `machinectl list`, `journalctl -u pyrkt-<uuid>` and
  `systemctl stop` work as rkt users expect. The output goes to the journal (and is copied to
  the app's log file when the unit ends, so `pyrkt logs` works the same for both flavours).
- systemd-nspawn exists but systemd is not PID 1: `systemd-nspawn --register=no --keep-unit`
  runs as our child inside cgroups the launcher made itself (the `cgroups` module), with its
  output captured to the app's log file like the builtin flavour.

nspawn runs one root directory, so this flavour runs pods of one app; several apps need the
builtin flavour. Networks are stage0's (nspawn joins its namespace); ports that NAT cannot
reach use the same userspace forwarder as the builtin flavour.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, cast

from . import linux
from .errors import LauncherError
from .limits import enforced, systemd_properties
from .logs import LogWriter, journal_to_log
from .network.dns import nspawn_binds
from .pods import Pod, PodLock, write_atomic
from .portfwd import Forwarder, bind_listeners, userspace_forwards
from .rootfs import mount_overlay
from .stage1_builtin import finish, make_cgroups


def machine_name(pod: Pod) -> str:
    return f"pyrkt-{pod.uuid}"


def _nspawn_args(pod: Pod, manifest: dict[str, Any], runtime: dict[str, Any], root: Path,
                 *, register: bool) -> list[str]:
    app = manifest["apps"][0]
    section = app["app"]
    args = ["systemd-nspawn", "--quiet", "--as-pid2", f"--directory={root}",
            f"--machine={machine_name(pod)}", f"--hostname={runtime['hostname']}",
            f"--register={'yes' if register else 'no'}", "--keep-unit",
            "--kill-signal=SIGTERM"]
    if (pod.path / "netns").exists():  # stage0's namespace, wired with CNI
        args += [f"--network-namespace-path={pod.path / 'netns'}"]
    elif runtime["net"] != "host":
        args.append("--private-network")
    binds = nspawn_binds(pod.path, app)  # the pod's /etc/hosts and resolv.conf
    if any(b.endswith(":/etc/resolv.conf") for b in binds):
        args.append("--resolv-conf=off")
    args += binds
    user = str(section.get("user", "0"))
    # nspawn's --user takes a name from the image's passwd file and its primary group; the
    # manifest's separate group is not applied by this flavour.
    if user not in ("0", "root"):
        args.append(f"--user={user}")
    if section.get("workingDirectory"):
        args.append(f"--chdir={section['workingDirectory']}")
    for entry in section.get("environment") or []:
        args.append(f"--setenv={entry['name']}={entry['value']}")
    volumes = {v["name"]: v for v in manifest.get("volumes") or []}
    for mount in app.get("mounts") or []:
        volume = volumes[mount["volume"]]
        source = volume["source"] if volume["kind"] == "host" else \
            str(pod.path / "volumes" / volume["name"])
        flag = "--bind-ro" if volume.get("readOnly") else "--bind"
        args.append(f"{flag}={source}:{mount['path']}")
    return args + ["--", *section["exec"]]


def _prepare_root(pod: Pod, app: dict[str, Any], runtime: dict[str, Any]) -> Path:
    app_dir = pod.app_dir(app["name"])
    root = app_dir / "rootfs"
    if runtime["rootfs"] == "overlay":
        # nspawn needs a directory: the overlay is mounted on the host for the pod's life
        # (gc and the end of the run unmount it).
        lower = (app_dir / "lower").read_text().strip()
        mount_overlay(Path(lower), app_dir / "upper", app_dir / "work", root)
    (root / "usr").mkdir(exist_ok=True)  # nspawn refuses a tree without /usr
    return root


def _unmount(root: Path) -> None:
    try:
        linux.umount(str(root), linux.MNT_DETACH)
    except OSError:
        pass


def run(pod: Pod, lock: PodLock, *, as_unit: bool, echo: bool = True) -> int:
    """Run a one-app pod under systemd-nspawn; `lock` (the pod's) is held by the caller.
    `as_unit`: systemd is PID 1, so the pod runs as a transient unit (systemd-run)."""
    manifest, runtime = pod.manifest(), pod.runtime()
    apps = manifest["apps"]
    if len(apps) != 1:
        raise LauncherError("the systemd stage1 runs pods of one app; use --stage1=builtin for "
                            "several apps")
    root = _prepare_root(pod, apps[0], runtime)
    try:
        if as_unit:
            code = _run_as_unit(pod, manifest, runtime, root, echo)
        else:
            code = _run_as_child(pod, manifest, runtime, root, echo)
    finally:
        if runtime["rootfs"] == "overlay":
            _unmount(root)
    return finish(pod, apps, code)


def _unit_properties(pod: Pod, app: dict[str, Any]) -> list[str]:
    return [arg for prop in systemd_properties(enforced(pod)[app["name"]]) for arg in ("-p", prop)]


def _run_as_unit(pod: Pod, manifest: dict[str, Any], runtime: dict[str, Any], root: Path,
                 echo: bool) -> int:
    unit = machine_name(pod)
    write_atomic(pod.path / "unit", unit + ".service\n")
    command = ["systemd-run", "--quiet", f"--unit={unit}", "--slice=machine", "--wait",
               f"--description=pyrkt pod {pod.uuid}",
               "--collect", "--service-type=exec", *_unit_properties(pod, manifest["apps"][0]),
               *_nspawn_args(pod, manifest, runtime, root, register=True)]
    process = subprocess.Popen(command)
    write_atomic(pod.path / "pid", f"{process.pid}\n")
    code = process.wait()
    # only what the unit's processes wrote, not systemd's own lines about the unit
    output = journal_to_log(f"{unit}.service", pod.app_dir(manifest["apps"][0]["name"]) / "log")
    if echo:
        os.write(1, output)
    write_atomic(pod.app_dir(manifest["apps"][0]["name"]) / "exit", f"{code}\n")
    return code


def _run_as_child(pod: Pod, manifest: dict[str, Any], runtime: dict[str, Any], root: Path,
                  echo: bool) -> int:
    app = manifest["apps"][0]
    groups = make_cgroups(pod, [app])[app["name"]]
    forwards = bind_listeners(userspace_forwards(runtime))
    log_path = pod.app_dir(app["name"]) / "log"
    args = _nspawn_args(pod, manifest, runtime, root, register=False)
    log = LogWriter(log_path)
    try:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, preexec_fn=groups.join_self)
        write_atomic(pod.path / "pid", f"{process.pid}\n")
        forwarder = _start_forwarder(process.pid, forwards)
        assert process.stdout is not None
        # Popen's pipes are BufferedReaders (typeshed says IO[bytes]); read1 returns what is
        # there instead of waiting for 64 KiB.
        stdout = cast(io.BufferedReader, process.stdout)
        for chunk in iter(lambda: stdout.read1(65536), b""):
            log.write(chunk)
            if echo:
                os.write(1, chunk)
        status = process.wait()
    finally:
        log.close()
    if forwarder is not None:
        forwarder.close()
        os.close(forwarder.netns_fd)
    code = status if status >= 0 else 128 - status
    write_atomic(pod.app_dir(app["name"]) / "exit", f"{code}\n")
    return code


def _start_forwarder(nspawn_pid: int, forwards: list[Any]) -> Forwarder | None:
    if not forwards:
        return None
    leader = _wait_child(nspawn_pid)
    forwarder = Forwarder(forwards, os.open(f"/proc/{leader}/ns/net", os.O_RDONLY | os.O_CLOEXEC))
    forwarder.start()
    return forwarder


def _wait_child(pid: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.02)
    raise LauncherError("systemd-nspawn did not start the pod in time")


def container_leader(pod: Pod) -> int | None:
    """Host PID of the container's first process (what `pyrkt enter` joins), if it runs."""
    unit_file = pod.path / "unit"
    nspawn: int | None
    if unit_file.exists():
        shown = subprocess.run(["systemctl", "show", "-p", "MainPID", "--value",
                                unit_file.read_text().strip()], capture_output=True, text=True)
        nspawn = int(shown.stdout.strip() or 0) or None
    else:
        nspawn = pod.pid()
    if nspawn is None:
        return None
    try:
        return _wait_child(nspawn, timeout=2)
    except LauncherError:
        return None


def stop(pod: Pod, *, force: bool = False) -> None:
    unit_file = pod.path / "unit"
    if unit_file.exists():
        unit = unit_file.read_text().strip()
        command = ["systemctl", "kill", "--signal=KILL", unit] if force else \
            ["systemctl", "stop", unit]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise LauncherError(f"{' '.join(command)}: {result.stderr.strip()}")
        return
    pid = pod.pid()
    if pid is None:
        raise LauncherError(f"pod {pod.uuid} is starting; try again in a moment")
    try:
        os.kill(pid, signal.SIGKILL if force else signal.SIGTERM)
    except ProcessLookupError:
        pass

