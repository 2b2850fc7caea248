"""`pyrkt list|status|stop|rm|gc|logs|enter|cat-manifest`: parse, delegate, print."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from registry.launcher import manage
from registry.launcher.errors import LauncherError
from registry.launcher.pods import find_pod
from registry.launcher.pods import list_pods as pods_on_disk

DIR_OPTION = click.option("--dir", "store", envvar="PYRKT_DIR",
                          help="Store directory (env PYRKT_DIR).")


def _store(value: str | None) -> Path:
    from registry.client.dirs import default_store_dir

    return Path(value) if value else default_store_dir()


def _fail(error: LauncherError) -> click.ClickException:
    return click.ClickException(str(error))


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


def _ago(stamp: float | None) -> str:
    if stamp is None:
        return ""
    seconds = max(0, int(time.time() - stamp))
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


@click.command("list")
@DIR_OPTION
@click.option("--full", is_flag=True, help="Full UUIDs, image IDs and absolute times.")
@click.option("--no-legend", is_flag=True, help="No header line.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def list_pods_command(store: str | None, full: bool, no_legend: bool, fmt: str) -> None:
    """List pods: UUID APP IMAGE NAME STATE CREATED STARTED NETWORKS."""
    infos = [manage.describe(pod) for pod in pods_on_disk(_store(store))]
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
                row.append(app.image_id[:19])
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


@click.command("status")
@DIR_OPTION
@click.option("--wait", is_flag=True, help="Wait for the pod to exit first.")
@click.option("--wait-timeout", type=float, default=None, help="Give up waiting after N seconds.")
@click.argument("uuid")
def status(store: str | None, wait: bool, wait_timeout: float | None, uuid: str) -> None:
    """Show a pod's state and its apps' exit codes (key=value lines, as rkt)."""
    try:
        pod = find_pod(_store(store), uuid)
        if wait:
            pod = manage.wait_for_exit(pod, wait_timeout)
        for line in manage.status_lines(pod):
            click.echo(line)
    except LauncherError as error:
        raise _fail(error) from None


@click.command("stop")
@DIR_OPTION
@click.option("--force", is_flag=True, help="Kill at once (SIGKILL) instead of asking to stop.")
@click.argument("uuids", nargs=-1, required=True)
def stop(store: str | None, force: bool, uuids: tuple[str, ...]) -> None:
    """Stop running pods."""
    failed = False
    for uuid in uuids:
        try:
            pod = manage.stop(_store(store), uuid, force=force)
            click.echo(f'"{pod.uuid}"')
        except LauncherError as error:
            click.echo(f"error: {error}", err=True)
            failed = True
    if failed:
        sys.exit(1)


@click.command("rm")
@DIR_OPTION
@click.argument("uuids", nargs=-1, required=True)
def rm(store: str | None, uuids: tuple[str, ...]) -> None:
    """Remove pods that are not running."""
    failed = False
    for uuid in uuids:
        try:
            pod = manage.rm(_store(store), uuid)
            click.echo(f'"{pod.uuid}"')
        except LauncherError as error:
            click.echo(f"error: {error}", err=True)
            failed = True
    if failed:
        sys.exit(1)


@click.command("gc")
@DIR_OPTION
@click.option("--grace-period", default="30m", show_default=True,
              help="Keep exited pods this long after they are marked.")
@click.option("--expire-prepared", default="24h", show_default=True,
              help="Prepared pods older than this become garbage.")
@click.option("--mark-only", is_flag=True, help="Only mark pods as garbage.")
def gc(store: str | None, grace_period: str, expire_prepared: str, mark_only: bool) -> None:
    """Collect garbage pods (never a running one): their files, cgroups and mounts."""
    try:
        manage.gc(_store(store), grace_period=parse_duration(grace_period),
                  expire_prepared=parse_duration(expire_prepared), mark_only=mark_only,
                  log=click.echo)
    except LauncherError as error:
        raise _fail(error) from None


@click.command("logs")
@DIR_OPTION
@click.option("--app", help="Only this app's output.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing while the pod runs.")
@click.argument("uuid")
def logs(store: str | None, app: str | None, follow: bool, uuid: str) -> None:
    """Print the output of a pod's apps."""
    out = click.get_binary_stream("stdout")
    try:
        for chunk in manage.follow_logs(_store(store), uuid, app, follow=follow):
            out.write(chunk)
            out.flush()
    except LauncherError as error:
        raise _fail(error) from None


@click.command("enter", context_settings={"ignore_unknown_options": True,
                                          "allow_interspersed_args": False})
@DIR_OPTION
@click.option("--app", help="The app to enter (needed when the pod has several).")
@click.argument("uuid")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def enter(store: str | None, app: str | None, uuid: str, command: tuple[str, ...]) -> None:
    """Run CMD (default /bin/sh) inside a running app's namespaces."""
    try:
        argv = manage.enter_command(_store(store), uuid, app, list(command))
    except LauncherError as error:
        raise _fail(error) from None
    sys.stdout.flush()
    try:
        os.execvp(argv[0], argv)
    except OSError as error:
        raise click.ClickException(f"cannot run {argv[0]}: {error.strerror}") from None


@click.command("cat-manifest")
@DIR_OPTION
@click.option("--pretty-print/--no-pretty-print", default=True)
@click.argument("uuid")
def cat_manifest(store: str | None, pretty_print: bool, uuid: str) -> None:
    """Print a pod's PodManifest."""
    try:
        manifest: Any = find_pod(_store(store), uuid).manifest()
    except LauncherError as error:
        raise _fail(error) from None
    click.echo(json.dumps(manifest, indent=2 if pretty_print else None))
