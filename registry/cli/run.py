"""`pyrkt run`, `pyrkt prepare`, `pyrkt run-prepared`: parse the flags, delegate to the launcher.

Every launcher command (these and the ones in `pods.py`) takes the client's global flags
(`client_options`: `--dir`, the three config directories, `--insecure-options`, `--debug`) and
ends on an error the way the client commands do: `pyrkt: <message>` on stderr, exit 254.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from registry.cli.launcher_errors import launcher_errors
from registry.cli.options import ClientContext, client_options
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

# Function-local imports keep start-up fast: each command loads only the parts it runs.

CONTEXT = {"ignore_unknown_options": True, "allow_interspersed_args": False,
           "help_option_names": ["-h", "--help"]}

def _pod_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    """Flags shared by `run` and `prepare` (per-app ones here apply to every app)."""
    options = [
        click.option("--volume", multiple=True, help="NAME,kind=host,source=PATH[,readOnly=true] "
                     "or NAME,kind=empty[,mode=0755,uid=0,gid=0]."),
        click.option("--mount", multiple=True, help="volume=NAME,target=PATH (every app)."),
        click.option("--port", multiple=True, help="Forward a host port to an app's port: "
                     "NAME:[HOSTIP:]HOSTPORT (rkt's flag; a registry's port comes from "
                     "domains.d in the config directories)."),
        click.option("--set-env", multiple=True, help="NAME=VALUE for every app."),
        click.option("--set-env-file", multiple=True, help="File of NAME=VALUE lines."),
        click.option("--inherit-env", is_flag=True, help="Start from pyrkt's own environment."),
        click.option("--exec", "exec_", help="Command to run instead of the image's."),
        click.option("--user", help="User (name or number) for every app."),
        click.option("--group", help="Group (name or number) for every app."),
        click.option("--working-dir", help="Working directory for every app."),
        click.option("--cpu", help="CPU limit, e.g. 500m, 1 or 2.5 (CPUs)."),
        click.option("--memory", help="Memory limit, e.g. 512M or 1Gi (bytes)."),
        click.option("--caps-retain", help="Capabilities every app keeps, and no others "
                     "(e.g. CAP_NET_BIND_SERVICE,CAP_CHOWN); after an image: that app only."),
        click.option("--caps-remove", help="Capabilities taken from rkt's default set "
                     "(e.g. CAP_NET_RAW); after an image: that app only."),
        click.option("--seccomp", help="Syscall filter, replacing the image's: "
                     "mode=retain|remove[,errno=ENAME],SYSCALL|@GROUP,... (rkt's flag; "
                     "e.g. mode=remove,errno=ENOTSUP,socket)."),
        click.option("--net", multiple=True, metavar="NETWORKS", help="default (rkt's: a veth to "
                     "the host, an address from 172.16.28.0/24, NAT out), default-restricted (the "
                     "host only), host, none (loopback only), all, or networks from net.d/*.conf "
                     "in the config directories; several: --net=default,mynet; an address: "
                     "--net=mynet:IP=10.1.0.9."),
        click.option("--dns", multiple=True, help="Name server for /etc/resolv.conf (repeatable); "
                     "host: the host's resolv.conf; none: ignore the networks' DNS."),
        click.option("--dns-search", multiple=True, help="Search domain (repeatable)."),
        click.option("--dns-opt", multiple=True, help="resolv.conf option, e.g. rotate."),
        click.option("--dns-domain", help="resolv.conf domain."),
        click.option("--hosts-entry", multiple=True, metavar="IP=HOST", help="An /etc/hosts "
                     "entry (repeatable, comma-separated); host: the host's /etc/hosts."),
        click.option("--hostname", help="Pod hostname (default rkt-UUID)."),
        click.option("--interactive", is_flag=True, help="Attach the terminal (one app)."),
        click.option("--pull-policy", type=click.Choice(PULL_POLICIES), default="new",
                     show_default=True),
        click.option("--stage1", type=click.Choice(STAGE1S), default="auto", show_default=True),
        click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="Trust this CA certificate bundle (PEM) for fetching over HTTPS."),
        click.option("--no-overlay", is_flag=True, help="Copy each image instead of overlayfs."),
        click.option("--uuid-file-save", type=click.Path(dir_okay=False),
                     help="Write the pod UUID to this file."),
        click.argument("images", nargs=-1, type=click.UNPROCESSED),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _hoist_pod_flags(flags: dict[str, Any], client: ClientContext) -> None:
    """Pod-wide and global flags written after an image apply to the pod, as in rkt.

    rkt reads every flag of `run` wherever it stands among the images (its seed lines put
    `--insecure-options=image --port=http:9000` after the first image); only the per-app ones
    bind to the image before them. App arguments (`-- ARGS` up to `---`) are left alone.
    """
    ctx = click.get_current_context()
    by_name = {opt: param for param in ctx.command.params if isinstance(param, click.Option)
               for opt in param.opts}
    kept: list[str] = []
    tokens = list(flags["images"])
    index, in_args = 0, False
    while index < len(tokens):
        token = tokens[index]
        index += 1
        name, has_value, inline = token.partition("=")
        param = by_name.get(name) if token.startswith("--") and not in_args else None
        if token == "--" and kept:
            in_args = True
        elif token == "---":
            in_args = False
        if param is None or name in PER_APP_FLAGS:
            kept.append(token)
            continue
        if param.is_flag:
            value: Any = True
        elif has_value:
            value = inline
        elif index < len(tokens):
            value, index = tokens[index], index + 1
        else:
            raise click.UsageError(f"{name} needs a value")
        if not param.is_flag:
            value = param.process_value(ctx, (value,) if param.multiple else value)
        if param.name == "insecure":
            client.insecure = value
        elif param.name in ("debug", "trust_keys_from_https"):
            setattr(client, param.name, True)
        elif param.name in ("store_dir", "system_config", "local_config", "user_config"):
            raise click.UsageError(f"{name} must come before the first image")
        elif param.multiple:
            flags[param.name] = (*flags[param.name], *value)
        else:
            flags[param.name] = value
    flags["images"] = tuple(kept)


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


def _pod_options(flags: dict[str, Any], client: ClientContext) -> PodOptions:
    _hoist_pod_flags(flags, client)
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


RUN_EXAMPLES = """\b
Examples:
  pyrkt run example.com/hello:v1                  fetch (if needed) and run by name
  pyrkt run --insecure-options=image ./hello.aci  run an unsigned local image
  pyrkt run example.com/hello -- --greeting=hi    arguments for the app
  pyrkt run --port=http:8080 example.com/web      host port 8080 to the app's port "http"
                      (DNAT by CNI's portmap on the default network)
  pyrkt run --net=mynet:IP=10.1.0.9 --dns=10.1.0.1 --hosts-entry=10.1.0.2=db example.com/app
                      join mynet (net.d/mynet.conf) with that address; name resolution
  pyrkt run --memory=512M --cpu=500m example.com/app --- example.com/sidecar
                      each app limited (before the first image: every app); a limit
                      this host cannot enforce is an error, or with
                      --insecure-options=limits a warning and no limit
  pyrkt run --user-config=./conf registry.test/app
                      a registry's port, CA bundle and insecure options come from
                      ./conf/domains.d/*.json
"""


@click.command("run", context_settings=CONTEXT, epilog=RUN_EXAMPLES)
@_pod_flags
@client_options
@launcher_errors
def run(client: ClientContext, **flags: Any) -> None:
    """Run IMAGE... as one pod: pyrkt run [FLAGS] IMAGE [APP-FLAGS] [-- ARGS] [--- IMAGE ...].

    \b
    IMAGE is a local .aci file, a name[:version][,label=value] or an image ID.
    Pod-wide flags (--set-env, --port, --volume, --insecure-options...) may
    stand anywhere, as in rkt. After an image, these apply to that app only:
    --exec --name --user --group --working-dir --cpu --memory
    --mount --environment --readonly-rootfs (given before the first image, they
    apply to every app). `--` starts the app's arguments, `---` the next image.
    The pod's exit code is the first non-zero app exit code (128+N: signal N).
    Images are fetched as `pyrkt fetch` does: a registry's port, CA bundle and
    insecure options come from domains.d in the config directories.
    Networks come from CNI plugins (/usr/lib/cni); `pyrkt status UUID` shows
    the pod's addresses (networks=default:ip4=172.16.28.2).
    """
    from registry.launcher.run import run_pod

    _, code = run_pod(client.store_dir, _pod_options(flags, client),
                      uuid_file=flags["uuid_file_save"], log=client.info)
    sys.stdout.flush()
    sys.exit(code)


@click.command("prepare", context_settings=CONTEXT)
@click.option("--quiet", "-q", is_flag=True, help="Print only the UUID.")
@_pod_flags
@client_options
@launcher_errors
def prepare(client: ClientContext, quiet: bool, **flags: Any) -> None:
    """Prepare a pod without running it; prints its UUID (flags as for `run`)."""
    from registry.launcher.prepare import prepare_pod
    from registry.launcher.run import save_uuid

    pod = prepare_pod(client.store_dir, _pod_options(flags, client),
                      log=(lambda m: None) if quiet else client.info)
    if flags["uuid_file_save"]:
        save_uuid(pod, flags["uuid_file_save"])
    click.echo(pod.uuid)


@click.command("run-prepared", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--stage1", type=click.Choice(STAGE1S), default=None)
@click.argument("uuid")
@client_options
@launcher_errors
def run_prepared(client: ClientContext, stage1: str | None, uuid: str) -> None:
    """Run a pod made by `pyrkt prepare`."""
    from registry.launcher.run import run_prepared as launch

    _, code = launch(client.store_dir, uuid, stage1=stage1, log=client.info)
    sys.stdout.flush()
    sys.exit(code)
