"""The flags of `pyrkt run` and `pyrkt prepare`, declared once (click's commands in `run.py` and
the lean entry are both made from `POD_FLAGS`), and what they mean: `pod_options` turns them
into the launcher's `PodOptions`; `run_command` is the body of `pyrkt run` for either reader.
"""

from __future__ import annotations

import os
import sys

from registry.errors import PyrktError
from registry.launcher.options import (
    PER_APP_FLAGS,
    PULL_POLICIES,
    STAGE1S,
    AppOptions,
    PodOptions,
    apply_app_flag,
    parse_dns,
    parse_env,
    parse_env_file,
    parse_image_list,
    parse_port,
    parse_volume,
)

from .context import ClientContext
from .flags import GLOBAL_FLAGS, PATH_EXISTING_FILE, PATH_FILE, Option

TYPE_CHECKING = False  # typing stays out of every start (see registry.launcher.pods)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

POD_FLAGS = (
    Option("--volume", multiple=True, help="NAME,kind=host,source=PATH[,readOnly=true] or "
           "NAME,kind=empty[,mode=0755,uid=0,gid=0]."),
    Option("--mount", multiple=True, help="volume=NAME,target=PATH (every app)."),
    Option("--port", multiple=True, help="Forward a host port to an app's port: "
           "NAME:[HOSTIP:]HOSTPORT (rkt's flag; a registry's port comes from domains.d in the "
           "config directories)."),
    Option("--set-env", multiple=True, help="NAME=VALUE for every app."),
    Option("--set-env-file", multiple=True, help="File of NAME=VALUE lines."),
    Option("--inherit-env", is_flag=True, default=False,
           help="Start from pyrkt's own environment."),
    Option("--exec", "exec_", help="Command to run instead of the image's."),
    Option("--user", help="User (name or number) for every app."),
    Option("--group", help="Group (name or number) for every app."),
    Option("--working-dir", help="Working directory for every app."),
    Option("--cpu", help="CPU limit, e.g. 500m, 1 or 2.5 (CPUs)."),
    Option("--memory", help="Memory limit, e.g. 512M or 1Gi (bytes)."),
    Option("--caps-retain", help="Capabilities every app keeps, and no others "
           "(e.g. CAP_NET_BIND_SERVICE,CAP_CHOWN); after an image: that app only."),
    Option("--caps-remove", help="Capabilities taken from rkt's default set (e.g. CAP_NET_RAW); "
           "after an image: that app only."),
    Option("--seccomp", help="Syscall filter, replacing the image's: "
           "mode=retain|remove[,errno=ENAME],SYSCALL|@GROUP,... (rkt's flag; "
           "e.g. mode=remove,errno=ENOTSUP,socket)."),
    Option("--net", multiple=True, metavar="NETWORKS", help="default (rkt's: a veth to the "
           "host, an address from 172.16.28.0/24, NAT out), default-restricted (the host only), "
           "host, none (loopback only), all, or networks from net.d/*.conf in the config "
           "directories; several: --net=default,mynet; an address: --net=mynet:IP=10.1.0.9."),
    Option("--dns", multiple=True, help="Name server for /etc/resolv.conf (repeatable); "
           "host: the host's resolv.conf; none: ignore the networks' DNS."),
    Option("--dns-search", multiple=True, help="Search domain (repeatable)."),
    Option("--dns-opt", multiple=True, help="resolv.conf option, e.g. rotate."),
    Option("--dns-domain", help="resolv.conf domain."),
    Option("--hosts-entry", multiple=True, metavar="IP=HOST", help="An /etc/hosts entry "
           "(repeatable, comma-separated); host: the host's /etc/hosts."),
    Option("--hostname", help="Pod hostname (default rkt-UUID)."),
    Option("--interactive", is_flag=True, default=False, help="Attach the terminal (one app)."),
    Option("--pull-policy", choices=PULL_POLICIES, default="new", show_default=True),
    Option("--stage1", choices=STAGE1S, default="auto", show_default=True),
    Option("--ca-bundle", path=PATH_EXISTING_FILE,
           help="Trust this CA certificate bundle (PEM) for fetching over HTTPS."),
    Option("--no-overlay", is_flag=True, default=False,
           help="Copy each image instead of overlayfs."),
    Option("--uuid-file-save", path=PATH_FILE, help="Write the pod UUID to this file."),
)


class FlagError(PyrktError):
    """A flag given where or how it cannot be (click's readers make it a usage error)."""


if TYPE_CHECKING:
    Convert = Callable[[Option, str], Any]  # a flag's raw value -> what the command receives


def hoist_pod_flags(flags: dict[str, Any], client: ClientContext, options: Sequence[Option],
                    convert: Convert) -> None:
    """Pod-wide and global flags written after an image apply to the pod, as in rkt.

    rkt reads every flag of `run` wherever it stands among the images (its seed lines put
    `--insecure-options=image --port=http:9000` after the first image); only the per-app ones
    bind to the image before them. App arguments (`-- ARGS` up to `---`) are left alone.
    `options` are the command's own; `convert` reads a value as the command's reader does.
    """
    by_name = {option.name: option for option in options}
    kept: list[str] = []
    tokens = list(flags["images"])
    index, in_args = 0, False
    while index < len(tokens):
        token = tokens[index]
        index += 1
        name, has_value, inline = token.partition("=")
        option = by_name.get(name) if token.startswith("--") and not in_args else None
        if token == "--" and kept:
            in_args = True
        elif token == "---":
            in_args = False
        if option is None or name in PER_APP_FLAGS:
            kept.append(token)
            continue
        if option.is_flag:
            value: Any = True
        elif has_value:
            value = inline
        elif index < len(tokens):
            value, index = tokens[index], index + 1
        else:
            raise FlagError(f"{name} needs a value")
        if not option.is_flag:
            value = convert(option, value)
        if option.dest == "insecure":
            client.insecure = value
        elif option.dest in ("debug", "trust_keys_from_https"):
            setattr(client, option.dest, True)
        elif option.dest in ("store_dir", "system_config", "local_config", "user_config"):
            raise FlagError(f"{name} must come before the first image")
        elif option.multiple:
            flags[option.dest] = (*flags[option.dest], *value)
        else:
            flags[option.dest] = value
    flags["images"] = tuple(kept)


def lean_convert(option: Option, raw: str) -> Any:
    """`convert` for the lean entry: flags.Option's own reading (Defer where click refuses)."""
    value = option.value(raw)
    return (value,) if option.multiple else value


HOISTED = (*POD_FLAGS, *GLOBAL_FLAGS)  # what may follow an image in `run` and `prepare`


def _warn_impossible_cpu(apps: list[AppOptions], client: ClientContext) -> None:
    """`--cpu=500` is 500 CPUs, as in rkt; on a smaller host that limits nothing, so say so."""
    host = os.cpu_count() or 1
    for app in apps:
        if app.cpu_millis is not None and app.cpu_millis > host * 1000:
            cpus = app.cpu_millis / 1000
            given = f"{cpus:g}"
            client.warn(f"--cpu={given} means {given} CPUs (as in rkt), more than this host's "
                        f"{host}, so it limits nothing; for {given} thousandths of a CPU write "
                        f"--cpu={given}m")


def pod_options(flags: dict[str, Any], client: ClientContext) -> PodOptions:
    """The launcher's options from the flags (hoisted already, see `hoist_pod_flags`)."""
    defaults = AppOptions()
    for flag, key in (("--exec", "exec_"), ("--user", "user"), ("--group", "group"),
                      ("--working-dir", "working_dir"), ("--cpu", "cpu"),
                      ("--memory", "memory"), ("--caps-retain", "caps_retain"),
                      ("--caps-remove", "caps_remove"), ("--seccomp", "seccomp")):
        if flags[key] is not None:
            apply_app_flag(defaults, flag, flags[key])
    for mount in flags["mount"]:
        apply_app_flag(defaults, "--mount", mount)
    env: dict[str, str] = {}
    for path in flags["set_env_file"]:
        env.update(parse_env_file(path))
    for item in flags["set_env"]:
        name, value = parse_env(item)
        env[name] = value
    apps = parse_image_list(list(flags["images"]), defaults)
    _warn_impossible_cpu(apps, client)
    return PodOptions(
        apps=apps,
        volumes=[parse_volume(v) for v in flags["volume"]],
        ports=[parse_port(p) for p in flags["port"]],
        env=env, inherit_env=flags["inherit_env"], net=",".join(flags["net"]) or "default",
        dns=parse_dns(list(flags["dns"]), list(flags["dns_search"]), list(flags["dns_opt"]),
                      flags["dns_domain"], list(flags["hosts_entry"])),
        hostname=flags["hostname"],
        interactive=flags["interactive"], insecure=set(client.insecure.enabled),
        pull_policy=flags["pull_policy"], stage1=flags["stage1"],
        overlay=False if flags["no_overlay"] else None, config_dirs=client.dirs,
        trust_keys_from_https=client.trust_keys_from_https,
        ca_bundle=flags["ca_bundle"],
    )


def run_command(client: ClientContext, flags: dict[str, Any], *, reap: bool = True) -> int:
    """`pyrkt run`: the pod's exit code (stdout flushed). `reap=False`: for a process that
    exits right after (see registry.launcher.run.run_pod)."""
    from registry.launcher.run import run_pod  # here: only a run loads the stage1 and network

    _, code = run_pod(client.store_dir, pod_options(flags, client),
                      uuid_file=flags["uuid_file_save"], log=client.info, reap=reap)
    sys.stdout.flush()
    return code
