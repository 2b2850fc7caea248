"""The root directory of a pod's machine (the systemd stage1) and the unit files in it.

`<pod>/machine/` is what systemd-nspawn boots (see `stage1_systemd` for why):

    etc/machine-id, etc/os-release, etc/systemd/journald.conf
    usr/                   the host's /usr, bound read-only by nspawn (bin, lib... as on the host)
    var/log/journal/<id>/  the machine's journal: `journalctl -M`, `pyrkt logs` (bound at the
                           machine's /run/log/journal: journald writes it from its start, with
                           no flush from /run to /var to wait for)
    pyrkt/units/           default.target, <app>.service and its companion pyrkt-exit-<app>.service
                           per app (SYSTEMD_UNIT_PATH)
    pyrkt/generators/      empty: none of the host's generators runs in a pod
    pyrkt/exit-status      run when an app ends: records its code, powers off after the last
    pyrkt/apps/            <pod>/apps bound in: each app's rootfs (RootDirectory=) and exit file
    pyrkt/volumes/<name>   each volume's source, bound in by nspawn
    pyrkt/binds/<n>        the pod's /etc/hosts and resolv.conf (network.dns), bound in by nspawn

Everything an app is given by its manifest (arguments, environment, user, working directory)
is written into its unit by `unitfile`, so systemd passes it on unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .capabilities import no_new_privileges, retained
from .errors import LauncherError
from .limits import enforced, systemd_properties
from .network.dns import pod_binds
from .pods import Pod, write_atomic
from .sandbox import resolve_identity
from .unitfile import environment_line, exec_line, path_value, quote, valid_env_name

MACHINE_DIR = "machine"
INNER = "/pyrkt"  # where the stage1's own files are, inside the machine
# Units of the stage1 itself that an app's unit must not replace.
RESERVED_PREFIXES = ("systemd-", "dbus", "init")
# What systemd adds to every service's environment; the builtin flavour gives an app only its
# manifest's variables (and AC_APP_NAME), and so does this one.
MANAGER_VARIABLES = ("LANG", "INVOCATION_ID", "JOURNAL_STREAM", "SYSTEMD_EXEC_PID", "PATH",
                     "LANGUAGE", "LC_ALL", "MANAGERPID", "NOTIFY_SOCKET", "HOME", "USER",
                     "LOGNAME", "SHELL")
BINDS_FILE = "nspawn-binds.json"
HOST_TOP_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def machine_name(pod: Pod) -> str:
    return f"pyrkt-{pod.uuid}"


def machine_id(pod: Pod) -> str:
    """The machine's ID is the pod's UUID (as rkt did): `journalctl --machine` and the journal
    directory name follow from the UUID alone."""
    return pod.uuid.replace("-", "")


def machine_root(pod: Pod) -> Path:
    return Path(pod.path) / MACHINE_DIR


def journal_dir(pod: Pod) -> Path:
    return machine_root(pod) / "var" / "log" / "journal"


def app_unit(app: str) -> str:
    return f"{app}.service"


@dataclass
class Machine:
    root: Path
    binds: list[str] = field(default_factory=list)  # nspawn --bind/--bind-ro flags
    # the host's directories bound read-only into the root before nspawn looks at it (it reads
    # the systemd version there to choose the machine's cgroup layout: an empty /usr would
    # give a cgroup v2 host's machine the legacy one, where its systemd cannot make the apps'
    # cgroups)
    host_dirs: list[str] = field(default_factory=list)


def _exit_status_script(apps: list[str]) -> str:
    """What an app's end runs (the ExecStop of its companion unit, outside the app's root):
    systemd's record of the app's main process (ExecMainCode: 1 exited, 2 killed, 3 dumped)
    becomes the shell's number (128+N for signal N)."""
    others = " ".join(apps)
    return f"""#!/bin/sh
# pyrkt: record the end of app $1, then power the pod off once every app has ended
app=$1
how=$(systemctl show --property=ExecMainCode --value "$app.service")
status=$(systemctl show --property=ExecMainStatus --value "$app.service")
case "$how" in
  1) code=$status ;;
  2|3) code=$((128 + status)) ;;
  *) code=255 ;;
esac
dir={INNER}/apps/$app
# the kernel's OOM killer ended it (over its MemoryMax): `pyrkt status` says oom-killed
if [ "$(systemctl show --property=Result --value "$app.service")" = oom-kill ]; then
  printf 'oom-killed\\n' > "$dir/reason"
fi
printf '%s\\n' "$code" > "$dir/.exit.stop" && mv -f "$dir/.exit.stop" "$dir/exit"
for other in {others}; do
  [ -e "{INNER}/apps/$other/exit" ] || exit 0
done
exec systemctl --no-block --job-mode=replace-irreversibly start poweroff.target
"""


def _companion_text(app: str) -> str:
    """A unit bound to the app's: stopped when the app's unit stops, for whatever reason (its
    end, its failure, the machine's shutdown), after it (so the app's status is final). The
    app's own ExecStopPost cannot do this: it would run inside the app's root."""
    return (f"[Unit]\nDescription=pyrkt: the end of app {app}\nDefaultDependencies=no\n"
            f"BindsTo={app_unit(app)}\nBefore={app_unit(app)} shutdown.target\n"
            f"Conflicts=shutdown.target\n"
            # stopped before the pod's directory is unmounted at shutdown
            f"RequiresMountsFor={INNER}/apps\n\n"
            f"[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n"
            f"ExecStop=/bin/sh {INNER}/exit-status {app}\n")


def companion_unit(app: str) -> str:
    return f"pyrkt-exit-{app}.service"


def _identity(root: Path, section: dict[str, Any], app: str) -> tuple[int, int]:
    """The app's uid and gid, looked up in its own image (systemd would read the machine's)."""
    try:
        return resolve_identity(str(section.get("user", "0")), str(section.get("group", "0")),
                                root=root)
    except OSError as error:
        raise LauncherError(f"app {app}: {error}") from None


def _lookup_root(pod: Pod, app: str, rootfs_mode: str) -> Path:
    """Where the app's files can be read before its root is mounted (overlay: the lower tree,
    as the upper one is still empty when the pod first starts)."""
    app_dir = Path(pod.app_dir(app))
    if rootfs_mode == "overlay":
        return Path((app_dir / "lower").read_text().strip())
    return app_dir / "rootfs"


def _app_unit_text(pod: Pod, manifest: dict[str, Any], app: dict[str, Any],
                   runtime: dict[str, Any], volume_dirs: dict[str, str],
                   bind_dirs: list[tuple[str, str, bool]], ids: set[tuple[str, int, int]]) -> str:
    """The app's unit; the uid and gid it runs as are added to `ids` (user and group files of
    the machine: systemd needs an entry even for a number)."""
    name, section = app["name"], app["app"]
    argv = [str(a) for a in section.get("exec") or []]
    if not argv:
        raise LauncherError(f"app {name} has nothing to execute")
    env = {e["name"]: str(e["value"]) for e in section.get("environment") or []}
    env.setdefault("AC_APP_NAME", name)
    for key, value in env.items():
        if not valid_env_name(key):
            raise LauncherError(f"app {name}: environment variable {key!r}: systemd takes only "
                                f"letters, digits and _ in names; use --stage1=builtin")
        if "\0" in value:
            raise LauncherError(f"app {name}: environment variable {key} holds a NUL byte")
    if any("\0" in arg for arg in argv):
        raise LauncherError(f"app {name}: an argument holds a NUL byte")
    uid, gid = _identity(_lookup_root(pod, name, runtime["rootfs"]), section, name)
    ids.add(("user", uid, gid))
    insecure = set(runtime.get("insecure") or ())
    lines = [
        "[Unit]",
        f"Description=pyrkt app {name}",
        "DefaultDependencies=no",
        "After=systemd-journald.socket",
        # stopped (SIGTERM, then SIGKILL after TimeoutStopSec) when the machine shuts down,
        # not left for the final kill of every process that would record no end
        "Conflicts=shutdown.target",
        "Before=shutdown.target",
        "",
        "[Service]",
        "Type=exec",
        f"RootDirectory={INNER}/apps/{name}/rootfs",
        "MountAPIVFS=yes",
        f"ExecStart={exec_line(argv)}",
        f"SyslogIdentifier={name}",
        "StandardInput=null",
        "StandardOutput=journal",
        "StandardError=journal",
        f"User={uid}",
        f"Group={gid}",
        f"UnsetEnvironment={' '.join(v for v in MANAGER_VARIABLES if v not in env)}",
    ]
    groups = [str(int(g)) for g in section.get("supplementaryGIDs") or []]
    ids.update(("group", int(g), int(g)) for g in groups)
    if groups:
        lines.append(f"SupplementaryGroups={' '.join(groups)}")
    lines += [f"Environment={environment_line(k, v)}" for k, v in env.items()]
    if section.get("workingDirectory"):
        directory = path_value(str(section["workingDirectory"]))
        if directory is None:
            raise LauncherError(f"app {name}: working directory "
                                f"{section['workingDirectory']!r} cannot be written in a "
                                f"systemd unit (spaces at its ends or control characters); use "
                                f"--stage1=builtin")
        lines.append(f"WorkingDirectory={directory}")
    if "capabilities" not in insecure:
        keep = sorted(retained(section))
        # (an empty value is the empty set; "~" alone would be every capability)
        lines.append(f"CapabilityBoundingSet={' '.join(keep)}")
    if no_new_privileges(section):
        lines.append("NoNewPrivileges=yes")
    lines += systemd_properties(enforced(pod)[name])  # the app's own limits (see `limits`)
    volumes = {v["name"]: v for v in manifest.get("volumes") or []}
    points = {p["path"]: bool(p.get("readOnly")) for p in section.get("mountPoints") or []}
    mounted = set()
    for mount in app.get("mounts") or []:
        volume = volumes[mount["volume"]]
        read_only = bool(volume.get("readOnly")) or points.get(mount["path"], False)
        key = "BindReadOnlyPaths" if read_only else "BindPaths"
        lines.append(f"{key}={quote(volume_dirs[volume['name']])}:{quote(mount['path'])}")
        mounted.add(mount["path"])
    for inner, target, read_only in bind_dirs:
        if target not in mounted:  # the app's volume wins
            key = "BindReadOnlyPaths" if read_only else "BindPaths"
            lines.append(f"{key}={quote(inner)}:{quote(target)}")
    return "\n".join(lines) + "\n"


def _write_ids(etc: Path, ids: set[tuple[str, int, int]]) -> None:
    """passwd and group of the machine: root, and a name for every id an app runs with (the
    names are the machine's only; the app sees its own image's files)."""
    users = {uid: gid for kind, uid, gid in ids if kind == "user" and uid != 0}
    groups = {gid for _, _, gid in ids if gid != 0}
    write_atomic(etc / "passwd", "root:x:0:0:root:/:/bin/sh\n" + "".join(
        f"pyrkt-{uid}:x:{uid}:{gid}::/:/usr/sbin/nologin\n" for uid, gid in sorted(users.items())))
    write_atomic(etc / "group", "root:x:0:\n" + "".join(
        f"pyrkt-{gid}:x:{gid}:\n" for gid in sorted(groups)))


def _link_host_dirs(root: Path) -> list[str]:
    """/usr, and /bin, /lib... as the host has them: a symlink into /usr (merged /usr) or a
    directory to bind; returns the directories to bind."""
    host_dirs = ["/usr"]
    for name in HOST_TOP_DIRS:
        host = Path("/") / name
        if host.is_symlink():
            os.symlink(os.readlink(host), root / name)
        elif host.is_dir():
            (root / name).mkdir()
            host_dirs.append(str(host))
    return host_dirs


def build(pod: Pod, manifest: dict[str, Any], runtime: dict[str, Any]) -> Machine:
    """Write the machine's root for a prepared pod (once: a pod runs once)."""
    apps = [app["name"] for app in manifest["apps"]]
    for name in apps:
        if name.startswith(RESERVED_PREFIXES):
            raise LauncherError(f"app name {name}: names starting with "
                                f"{', '.join(RESERVED_PREFIXES)} are the systemd stage1's own; "
                                f"rename the app (--name) or use --stage1=builtin")
    root = machine_root(pod)
    if root.exists():
        shutil.rmtree(root)
    inner = root / INNER.lstrip("/")
    for sub in ("etc/systemd", "usr", "var/log/journal/" + machine_id(pod), "run", "tmp",
                INNER.lstrip("/") + "/units", INNER.lstrip("/") + "/generators",
                INNER.lstrip("/") + "/apps"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    host_dirs = _link_host_dirs(root)
    binds: list[str] = []
    write_atomic(root / "etc" / "machine-id", machine_id(pod) + "\n")
    for candidate in ("/etc/os-release", "/usr/lib/os-release"):
        if os.path.exists(candidate):  # nspawn boots only what looks like an OS tree
            shutil.copyfile(candidate, root / "etc" / "os-release")
            break
    # The "volatile" journal is on disk (see the layout above), so `pyrkt logs` reads it after
    # the end; nothing dropped: an app that prints fast would lose lines to the rate limit.
    write_atomic(root / "etc" / "systemd" / "journald.conf",
                 "[Journal]\nStorage=volatile\nRateLimitIntervalSec=0\nRateLimitBurst=0\n"
                 "ForwardToConsole=no\nForwardToWall=no\n")
    binds.append(f"--bind={Path(pod.path) / 'apps'}:{INNER}/apps")
    binds.append(f"--bind={journal_dir(pod)}:/run/log/journal")
    volume_dirs: dict[str, str] = {}
    for volume in manifest.get("volumes") or []:
        source = volume["source"] if volume["kind"] == "host" else \
            str(Path(pod.path) / "volumes" / volume["name"])
        inner_path = f"{INNER}/volumes/{volume['name']}"
        flag = "--bind-ro" if volume.get("readOnly") else "--bind"
        binds.append(f"{flag}={source}:{inner_path}")
        volume_dirs[volume["name"]] = inner_path
    bind_dirs: list[tuple[str, str, bool]] = []
    for number, entry in enumerate(pod_binds(Path(pod.path))):
        if os.path.exists(entry["source"]):
            inner_path = f"{INNER}/binds/{number}"
            binds.append(f"--bind-ro={entry['source']}:{inner_path}")
            bind_dirs.append((inner_path, entry["target"], True))
    units = inner / "units"
    wants = ["systemd-journald.service"]
    ids: set[tuple[str, int, int]] = set()
    for app in manifest["apps"]:
        text = _app_unit_text(pod, manifest, app, runtime, volume_dirs, bind_dirs, ids)
        write_atomic(units / app_unit(app["name"]), text)
        write_atomic(units / companion_unit(app["name"]), _companion_text(app["name"]))
        wants += [companion_unit(app["name"]), app_unit(app["name"])]
    write_atomic(units / "default.target",
                 f"[Unit]\nDescription=pyrkt pod {pod.uuid}\nWants={' '.join(wants)}\n")
    _write_ids(root / "etc", ids)
    write_atomic(inner / "exit-status", _exit_status_script(apps))
    write_atomic(inner / BINDS_FILE, json.dumps({"binds": binds, "host": host_dirs}))
    return Machine(root, binds, host_dirs)


def load(pod: Pod) -> Machine:
    """The machine `build` wrote (for the supervisor, which boots it)."""
    root = machine_root(pod)
    saved = json.loads((root / INNER.lstrip("/") / BINDS_FILE).read_text())
    return Machine(root, saved["binds"], saved["host"])


def nspawn_args(pod: Pod, runtime: dict[str, Any], machine: Machine) -> list[str]:
    """systemd-nspawn booting the machine, registered with machined (class container)."""
    args = ["systemd-nspawn", "--quiet", "--boot", f"--directory={machine.root}",
            f"--machine={machine_name(pod)}", f"--hostname={runtime['hostname']}",
            "--register=yes", "--keep-unit", "--console=passive", "--link-journal=no",
            "--resolv-conf=off", "--timezone=off",
            f"--setenv=SYSTEMD_UNIT_PATH={INNER}/units:",  # ours first, then systemd's own
            f"--setenv=SYSTEMD_GENERATOR_PATH={INNER}/generators"]
    if (Path(pod.path) / "netns").exists():  # stage0's namespace, wired with CNI
        args.append(f"--network-namespace-path={Path(pod.path) / 'netns'}")
    elif runtime["net"] != "host":
        args.append("--private-network")
    return args + machine.binds + ["--", "--log-level=warning", "--log-target=journal",
                                   "--show-status=no"]
