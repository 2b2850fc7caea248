"""`pyrkt list|status|stop|rm|gc|logs|enter|cat-manifest`: parse, delegate, print.

Errors end each command as in the client's commands (`pyrkt: <message>`, exit 254): see
`registry.cli.launcher_errors`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from registry.cli import views
from registry.cli.launcher_errors import launcher_errors
from registry.cli.options import EXIT_FAILURE, ClientContext, click_options, client_options
from registry.launcher import manage
from registry.launcher.errors import LauncherError
from registry.launcher.pods import find_pod

# Function-local imports keep start-up fast: each command loads only the parts it runs.

CONTEXT = {"help_option_names": ["-h", "--help"]}


def parse_duration(text: str) -> float:
    """Go-style durations as rkt took them: 30m, 24h, 1h30m, 90s, 0."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    total, number, index = 0.0, "", 0
    text = text.strip()
    if text == "0":
        return 0.0
    while index < len(text):
        char = text[index]
        if char.isdigit() or char == ".":
            number += char
            index += 1
            continue
        unit = "ms" if text[index:index + 2] == "ms" else char
        if unit not in units or not number:
            raise click.BadParameter(f'"{text}" is not a duration (e.g. 30m, 24h, 1h30m)')
        total += float(number) * units[unit]
        number, index = "", index + len(unit)
    if number:
        raise click.BadParameter(f'"{text}": a number needs a unit (s, m, h)')
    return total


def _duration(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    return parse_duration(value)


@click.command("list", context_settings=CONTEXT, epilog="""\b
Examples:
  pyrkt list --full
  pyrkt list --fields=uuid,state,app --no-legend
  pyrkt list --format=json-pretty
""")
@click_options(views.LIST_FLAGS)
@client_options
@launcher_errors
def list_pods_command(client: ClientContext, full: bool, no_legend: bool, fields: str | None,
                      fmt: str) -> None:
    """List pods: UUID APP IMAGE NAME STATE CREATED STARTED NETWORKS."""
    try:
        views.list_fields(fields, full)
    except views.FieldError as error:
        raise click.BadParameter(str(error), param_hint="--fields") from None
    views.list_command(client, full, no_legend, fields, fmt)


list_pods = list_pods_command  # the name main.SUBCOMMANDS imports


@click.command("status", context_settings=CONTEXT)
@click_options(views.STATUS_FLAGS)
@click.argument("uuid")
@client_options
@launcher_errors
def status(client: ClientContext, wait: bool, wait_timeout: float | None, fmt: str,
           uuid: str) -> None:
    """Show a pod's state and its apps' exit codes (key=value lines, as rkt)."""
    views.status_command(client, wait, wait_timeout, fmt, uuid)


@click.command("stop", context_settings=CONTEXT, epilog="""\b
Examples:
  pyrkt stop 5bc080ca                 SIGTERM, SIGKILL after 90s if still running
  pyrkt stop --grace-period=5s 5bc0   a shorter wait before SIGKILL
  pyrkt stop --force 5bc080ca         SIGKILL at once
  pyrkt stop --uuid-file=./pod-uuid
""")
@click.option("--force", is_flag=True, help="Kill at once (SIGKILL) instead of asking to stop.")
@click.option("--grace-period", default="90s", show_default=True, callback=_duration,
              help="How long the apps have after SIGTERM before SIGKILL (rkt's: systemd's "
              "default stop timeout).")
@click.option("--no-wait", is_flag=True, help="Signal and return; do not wait for the pod to "
              "exit.")
@click.option("--uuid-file", type=click.Path(dir_okay=False),
              help="Read the pod UUID from this file (as written by --uuid-file-save).")
@click.argument("uuids", nargs=-1)
@client_options
@launcher_errors
def stop(client: ClientContext, force: bool, grace_period: float, no_wait: bool,
         uuid_file: str | None, uuids: tuple[str, ...]) -> None:
    """Stop running pods: every app's processes get SIGTERM, then SIGKILL after the grace
    period. Returns once each pod has exited (its forwarded ports are free again). An exited
    pod whose init still runs (its end recorded by a stage1 that then failed) is stopped too."""
    if uuid_file:
        try:
            uuids = (*uuids, Path(uuid_file).read_text().strip())
        except OSError as error:
            raise LauncherError(f"--uuid-file {uuid_file}: {error.strerror or error}") from None
    if not uuids:
        raise click.UsageError("give the UUID of a pod to stop (or --uuid-file)")
    failed = False
    for uuid in uuids:
        try:
            pod = manage.stop(client.store_dir, uuid, force=force, grace=grace_period,
                              wait=not no_wait)
            click.echo(f'"{pod.uuid}"')
        except LauncherError as error:  # say so, and go on with the others
            client.info(str(error))
            failed = True
    if failed:
        sys.exit(EXIT_FAILURE)


@click.command("rm", context_settings=CONTEXT)
@click.argument("uuids", nargs=-1, required=True)
@client_options
@launcher_errors
def rm(client: ClientContext, uuids: tuple[str, ...]) -> None:
    """Remove pods that are not running."""
    failed = False
    for uuid in uuids:
        try:
            pod = manage.rm(client.store_dir, uuid)
            click.echo(f'"{pod.uuid}"')
        except LauncherError as error:  # say so, and go on with the others
            client.info(str(error))
            failed = True
    if failed:
        sys.exit(EXIT_FAILURE)


@click.command("gc", context_settings=CONTEXT)
@click.option("--grace-period", default="30m", show_default=True, callback=_duration,
              help="Keep exited pods this long after they are marked.")
@click.option("--expire-prepared", default="24h", show_default=True, callback=_duration,
              help="Prepared pods older than this become garbage.")
@click.option("--mark-only", is_flag=True, help="Only mark pods as garbage.")
@client_options
@launcher_errors
def gc(client: ClientContext, grace_period: float, expire_prepared: float,
       mark_only: bool) -> None:
    """Collect garbage pods (never a running one): their files, cgroups and mounts."""
    manage.gc(client.store_dir, grace_period=grace_period, expire_prepared=expire_prepared,
              mark_only=mark_only, log=click.echo)


def _since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    """A duration back from now (10m, 1h30m) or a moment (2026-12-01T08:30:00[Z])."""
    if value is None:
        return None
    from datetime import datetime

    text = value.strip()
    try:
        return time.time() - parse_duration(text)
    except click.BadParameter:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f'"{value}" is neither a duration (10m, 2h) nor a time '
                                 f"(2026-12-01T08:30:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a time without zone is local, as the user reads a clock
    return moment.timestamp()


@click.command("logs", context_settings=CONTEXT, epilog="""\b
Examples:
  pyrkt logs 5bc080ca                   every app's lines, in time order
  pyrkt logs -f --tail=20 5bc080ca      the last 20 lines, then new ones as they come
  pyrkt logs --since=10m -t 5bc080ca    the last ten minutes, with UTC timestamps
  pyrkt logs --app=web --no-prefix 5bc0 one app's bytes exactly as written
""")
@click.option("--app", help="Only this app's output.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing while the pod runs.")
@click.option("-n", "--tail", type=click.IntRange(min=0), default=None,
              help="Only the last N lines (then new ones with --follow).")
@click.option("--since", callback=_since, default=None,
              help="Only lines from this time on: a duration back from now (10m, 1h30m) or a "
              "time (2026-12-01T08:30:00Z).")
@click.option("-t", "--timestamps", is_flag=True, help="Start each line with its UTC time.")
@click.option("--no-prefix", is_flag=True, help="No app name before each line.")
@click.argument("uuid")
@client_options
@launcher_errors
def logs(client: ClientContext, app: str | None, follow: bool, tail: int | None,
         since: float | None, timestamps: bool, no_prefix: bool, uuid: str) -> None:
    """Print the output of a pod's apps, each line as `APP | text`, in time order."""
    from registry.launcher import logs as applogs

    out = sys.stdout.buffer
    pod = find_pod(client.store_dir, uuid)
    names = [app] if app else pod.app_names()
    width = None if no_prefix else max((len(n) for n in names), default=0)
    for line in manage.read_logs(client.store_dir, uuid, app, follow=follow, since=since,
                                 tail=tail):
        out.write(applogs.format_line(line, prefix_width=width, timestamps=timestamps))
        if follow:
            out.flush()
    out.flush()


@click.command("enter", context_settings={**CONTEXT, "ignore_unknown_options": True,
                                          "allow_interspersed_args": False})
@click.option("--app", help="The app to enter (needed when the pod has several).")
@click.argument("uuid")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@client_options
@launcher_errors
def enter(client: ClientContext, app: str | None, uuid: str, command: tuple[str, ...]) -> None:
    """Run COMMAND (default /bin/sh) inside a running app, confined as the app is.

    The command runs as root in the app's namespaces, cgroups and root, with
    the app's capabilities, no_new_privs and seccomp filter and environment.

    \b
    pyrkt enter UUID                 a shell, when the image has /bin/sh
    pyrkt enter UUID /app/tool ARGS  any program of the image
    """
    from registry.launcher.enter import run_entered

    target = manage.enter_target(client.store_dir, uuid, app, list(command))
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(run_entered(target))


@click.command("cat-manifest", context_settings=CONTEXT)
@click.option("--pretty-print/--no-pretty-print", default=True)
@click.argument("uuid")
@client_options
@launcher_errors
def cat_manifest(client: ClientContext, pretty_print: bool, uuid: str) -> None:
    """Print a pod's PodManifest."""
    manifest: Any = find_pod(client.store_dir, uuid).manifest()
    click.echo(json.dumps(manifest, indent=2 if pretty_print else None))
