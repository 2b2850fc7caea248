"""`pyrkt run`, `pyrkt prepare`, `pyrkt run-prepared`: parse the flags, delegate to the launcher."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from registry.launcher.errors import LauncherError
from registry.launcher.options import (
    NET_MODES,
    PULL_POLICIES,
    STAGE1S,
    AppOptions,
    PodOptions,
    apply_app_flag,
    parse_env,
    parse_env_file,
    parse_image_list,
    parse_insecure,
    parse_port,
    parse_volume,
)

CONTEXT = {"ignore_unknown_options": True, "allow_interspersed_args": False,
           "help_option_names": ["-h", "--help"]}


def store_dir(value: str | None) -> Path:
    from registry.client.dirs import default_store_dir

    return Path(value) if value else default_store_dir()


def _pod_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    """Flags shared by `run` and `prepare` (per-app ones here apply to every app)."""
    options = [
        click.option("--dir", "store", envvar="PYRKT_DIR", help="Store directory (env PYRKT_DIR)."),
        click.option("--volume", multiple=True, help="NAME,kind=host,source=PATH[,readOnly=true] "
                     "or NAME,kind=empty[,mode=0755,uid=0,gid=0]."),
        click.option("--mount", multiple=True, help="volume=NAME,target=PATH (every app)."),
        click.option("--port", multiple=True, help="NAME:[HOSTIP:]HOSTPORT."),
        click.option("--set-env", multiple=True, help="NAME=VALUE for every app."),
        click.option("--set-env-file", multiple=True, help="File of NAME=VALUE lines."),
        click.option("--inherit-env", is_flag=True, help="Start from pyrkt's own environment."),
        click.option("--exec", "exec_", help="Command to run instead of the image's."),
        click.option("--user", help="User (name or number) for every app."),
        click.option("--group", help="Group (name or number) for every app."),
        click.option("--working-dir", help="Working directory for every app."),
        click.option("--cpu", help="CPU limit, e.g. 500m."),
        click.option("--memory", help="Memory limit, e.g. 512M."),
        click.option("--net", type=click.Choice(NET_MODES), default="default", show_default=True),
        click.option("--hostname", help="Pod hostname (default rkt-UUID)."),
        click.option("--interactive", is_flag=True, help="Attach the terminal (one app)."),
        click.option("--insecure-options", multiple=True, help="none,image,... (as rkt)."),
        click.option("--pull-policy", type=click.Choice(PULL_POLICIES), default="new",
                     show_default=True),
        click.option("--stage1", type=click.Choice(STAGE1S), default="auto", show_default=True),
        click.option("--no-overlay", is_flag=True, help="Copy each image instead of overlayfs."),
        click.option("--uuid-file-save", type=click.Path(dir_okay=False),
                     help="Write the pod UUID to this file."),
        click.argument("images", nargs=-1, type=click.UNPROCESSED),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _pod_options(flags: dict[str, Any]) -> PodOptions:
    defaults = AppOptions()
    for flag, key in (("--exec", "exec_"), ("--user", "user"), ("--group", "group"),
                      ("--working-dir", "working_dir"), ("--cpu", "cpu"),
                      ("--memory", "memory")):
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
    return PodOptions(
        apps=parse_image_list(list(flags["images"]), defaults),
        volumes=[parse_volume(v) for v in flags["volume"]],
        ports=[parse_port(p) for p in flags["port"]],
        env=env, inherit_env=flags["inherit_env"], net=flags["net"], hostname=flags["hostname"],
        interactive=flags["interactive"], insecure=parse_insecure(list(flags["insecure_options"])),
        pull_policy=flags["pull_policy"], stage1=flags["stage1"],
        overlay=False if flags["no_overlay"] else None,
    )


def _say(message: str) -> None:
    click.echo(message, err=True)


@click.command("run", context_settings=CONTEXT)
@_pod_flags
def run(**flags: Any) -> None:
    """Run IMAGE... as one pod: pyrkt run [FLAGS] IMAGE [APP-FLAGS] [-- ARGS] [--- IMAGE ...].

    \b
    IMAGE is a local .aci file, a name[:version][,label=value] or an image ID.
    Pod-wide flags come before the first image. After an image, these apply to
    that app only: --exec --name --user --group --working-dir --cpu --memory
    --mount --set-env --readonly-rootfs (given before the first image, they
    apply to every app). `--` starts the app's arguments, `---` the next image.
    The pod's exit code is the first non-zero app exit code (128+N: signal N).
    """
    from registry.launcher.run import run_pod

    try:
        _, code = run_pod(store_dir(flags["store"]), _pod_options(flags),
                          uuid_file=flags["uuid_file_save"], log=_say)
    except LauncherError as error:
        raise click.ClickException(str(error)) from None
    sys.stdout.flush()
    sys.exit(code)


@click.command("prepare", context_settings=CONTEXT)
@click.option("--quiet", "-q", is_flag=True, help="Print only the UUID.")
@_pod_flags
def prepare(quiet: bool, **flags: Any) -> None:
    """Prepare a pod without running it; prints its UUID (flags as for `run`)."""
    from registry.launcher.prepare import prepare_pod
    from registry.launcher.run import save_uuid

    try:
        pod = prepare_pod(store_dir(flags["store"]), _pod_options(flags),
                          log=(lambda m: None) if quiet else _say)
        if flags["uuid_file_save"]:
            save_uuid(pod, flags["uuid_file_save"])
    except LauncherError as error:
        raise click.ClickException(str(error)) from None
    click.echo(pod.uuid)


@click.command("run-prepared")
@click.option("--dir", "store", envvar="PYRKT_DIR", help="Store directory (env PYRKT_DIR).")
@click.option("--stage1", type=click.Choice(STAGE1S), default=None)
@click.argument("uuid")
def run_prepared(store: str | None, stage1: str | None, uuid: str) -> None:
    """Run a pod made by `pyrkt prepare`."""
    from registry.launcher.run import run_prepared as launch

    try:
        _, code = launch(store_dir(store), uuid, stage1=stage1)
    except LauncherError as error:
        raise click.ClickException(str(error)) from None
    sys.stdout.flush()
    sys.exit(code)
