"""`pyrkt list|status|stop|rm|gc|logs|enter|cat-manifest`: parse, delegate, print.

Errors end each command as in the client's commands (`pyrkt: <message>`, exit 254): see
`registry.cli.run.launcher_errors`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import click

from registry.cli.options import EXIT_FAILURE, ClientContext, client_options
from registry.cli.run import launcher_errors
from registry.launcher import manage
from registry.launcher.errors import LauncherError
from registry.launcher.pods import find_pod
from registry.launcher.pods import list_pods as pods_on_disk

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


def _ago(stamp: float | None) -> str:
    if stamp is None:
        return ""
    seconds = max(0, int(time.time() - stamp))
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


@click.command("list", context_settings=CONTEXT)
@click.option("--full", is_flag=True, help="Full UUIDs, image IDs and absolute times.")
@click.option("--no-legend", is_flag=True, help="No header line.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@client_options
@launcher_errors
def list_pods_command(client: ClientContext, full: bool, no_legend: bool, fmt: str) -> None:
    """List pods: UUID APP IMAGE NAME STATE CREATED STARTED NETWORKS."""
    infos = [manage.describe(pod) for pod in pods_on_disk(client.store_dir)]
    if fmt == "json":
        click.echo(json.dumps([info.to_json() for info in infos], indent=2))
        return
    header = ["UUID", "APP", "IMAGE NAME"] + (["IMAGE ID"] if full else []) + \
        ["STATE", "CREATED", "STARTED", "NETWORKS"]
    rows: list[list[str]] = []
    when = manage.format_time if full else _ago
    for info in infos:
        apps = info.apps or [manage.AppInfo("", "", "", None)]
        for index, app in enumerate(apps):
            first = index == 0
            row = [(info.uuid if full else info.uuid[:8]) if first else "", app.name,
                   app.image_name]
            if full:
                row.append(app.image_id)
            row += [info.state if first else "", when(info.created) if first else "",
                    when(info.started) if first else "",
                    ",".join(info.networks) if first else ""]
            rows.append(row)
    table = rows if no_legend else [header] + rows
    if not table:
        return
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


list_pods = list_pods_command  # the name main.SUBCOMMANDS imports


@click.command("status", context_settings=CONTEXT)
@click.option("--wait", is_flag=True, help="Wait for the pod to exit first.")
@click.option("--wait-timeout", type=float, default=None, help="Give up waiting after N seconds.")
@click.argument("uuid")
@client_options
@launcher_errors
def status(client: ClientContext, wait: bool, wait_timeout: float | None, uuid: str) -> None:
    """Show a pod's state and its apps' exit codes (key=value lines, as rkt)."""
    pod = find_pod(client.store_dir, uuid)
    if wait:
        pod = manage.wait_for_exit(pod, wait_timeout)
    for line in manage.status_lines(pod):
        click.echo(line)


@click.command("stop", context_settings=CONTEXT)
@click.option("--force", is_flag=True, help="Kill at once (SIGKILL) instead of asking to stop.")
@click.argument("uuids", nargs=-1, required=True)
@client_options
@launcher_errors
def stop(client: ClientContext, force: bool, uuids: tuple[str, ...]) -> None:
    """Stop running pods."""
    failed = False
    for uuid in uuids:
        try:
            pod = manage.stop(client.store_dir, uuid, force=force)
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


@click.command("logs", context_settings=CONTEXT)
@click.option("--app", help="Only this app's output.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing while the pod runs.")
@click.argument("uuid")
@client_options
@launcher_errors
def logs(client: ClientContext, app: str | None, follow: bool, uuid: str) -> None:
    """Print the output of a pod's apps."""
    out = click.get_binary_stream("stdout")
    for chunk in manage.follow_logs(client.store_dir, uuid, app, follow=follow):
        out.write(chunk)
        out.flush()


@click.command("enter", context_settings={**CONTEXT, "ignore_unknown_options": True,
                                          "allow_interspersed_args": False})
@click.option("--app", help="The app to enter (needed when the pod has several).")
@click.argument("uuid")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@client_options
@launcher_errors
def enter(client: ClientContext, app: str | None, uuid: str, command: tuple[str, ...]) -> None:
    """Run COMMAND (default /bin/sh) inside a running app's namespaces.

    \b
    pyrkt enter UUID                 a shell, when the image has /bin/sh
    pyrkt enter UUID /app/tool ARGS  any program of the image
    """
    from registry.launcher.linux import default_signals_for_exec

    argv = manage.enter_command(client.store_dir, uuid, app, list(command))
    sys.stdout.flush()
    sys.stderr.flush()
    default_signals_for_exec()  # what we ignore (SIGPIPE...) must not stay ignored in COMMAND
    try:
        os.execvp(argv[0], argv)
    except OSError as error:
        raise LauncherError(f"cannot run {argv[0]}: {error.strerror}") from None


@click.command("cat-manifest", context_settings=CONTEXT)
@click.option("--pretty-print/--no-pretty-print", default=True)
@click.argument("uuid")
@client_options
@launcher_errors
def cat_manifest(client: ClientContext, pretty_print: bool, uuid: str) -> None:
    """Print a pod's PodManifest."""
    manifest: Any = find_pod(client.store_dir, uuid).manifest()
    click.echo(json.dumps(manifest, indent=2 if pretty_print else None))
