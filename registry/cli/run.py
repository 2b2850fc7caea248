"""`pyrkt run`, `pyrkt prepare`, `pyrkt run-prepared`: parse the flags, delegate to the launcher.

Every launcher command (these and the ones in `pods.py`) takes the client's global flags
(`client_options`: `--dir`, the three config directories, `--insecure-options`, `--debug`) and
ends on an error the way the client commands do: `pyrkt: <message>` on stderr, exit 254.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from registry.cli.launcher_errors import launcher_errors
from registry.cli.options import ClientContext, click_options, client_options
from registry.launcher.options import STAGE1S

from .flags import Option
from .pod_flags import HOISTED, POD_FLAGS, FlagError, hoist_pod_flags, pod_options, run_command

# Function-local imports keep start-up fast: each command loads only the parts it runs.

CONTEXT = {"ignore_unknown_options": True, "allow_interspersed_args": False,
           "help_option_names": ["-h", "--help"]}
QUIET = Option("--quiet", is_flag=True, default=False, short="-q", help="Print only the UUID.")


def _pod_flags(func: Any) -> Any:
    """Flags shared by `run` and `prepare` (per-app ones here apply to every app)."""
    return click_options(POD_FLAGS)(click.argument("images", nargs=-1, type=click.UNPROCESSED)(
        func))


def _click_convert(option: Option, raw: str) -> Any:
    """A hoisted flag's value as click reads it (its type, its callback, its errors)."""
    ctx = click.get_current_context()
    param = next(p for p in ctx.command.params if option.name in getattr(p, "opts", ()))
    return param.process_value(ctx, (raw,) if option.multiple else raw)


def _hoisted(flags: dict[str, Any], client: ClientContext, extra: tuple[Option, ...] = ()
             ) -> dict[str, Any]:
    try:
        hoist_pod_flags(flags, client, (*extra, *HOISTED), _click_convert)
    except FlagError as error:
        raise click.UsageError(str(error)) from None
    return flags


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
    sys.exit(run_command(client, _hoisted(flags, client)))


@click.command("prepare", context_settings=CONTEXT)
@click_options((QUIET,))
@_pod_flags
@client_options
@launcher_errors
def prepare(client: ClientContext, quiet: bool, **flags: Any) -> None:
    """Prepare a pod without running it; prints its UUID (flags as for `run`)."""
    from registry.launcher.prepare import prepare_pod
    from registry.launcher.run import save_uuid

    pod = prepare_pod(client.store_dir, pod_options(_hoisted(flags, client, (QUIET,)), client),
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
