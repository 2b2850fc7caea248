"""`pyrkt list`, `pyrkt status` and `pyrkt image list`: their flags (declared once: click's
commands in `pods.py` and `image.py` and the lean entry are made from them) and their bodies,
without click, so the lean entry (`registry.cli.entry`) can start them as fast as `run`.

A bad `--fields`/`--sort` is a `FieldError`, checked before anything is printed: click's
commands word it as click's usage error; the lean entry hands such a line to click.
"""

from __future__ import annotations

import os
import time

from registry import jsontext
from registry.errors import PyrktError

from .context import ClientContext, echo, human_bytes
from .flags import Option

TYPE_CHECKING = False  # typing, for the type checker only: ~2 ms of every listing's start
if TYPE_CHECKING:
    from typing import Any

    from registry.client.store import ImageStore, StoredImage
    from registry.launcher import manage

# Function-local imports keep start-up fast: each view loads only the parts it shows.


class FieldError(PyrktError, ValueError):
    """A `--fields` or `--sort` value naming no column (click: a bad parameter)."""


# -- pyrkt list ---------------------------------------------------------------------------------

LIST_FIELDS = {  # --fields name -> column title (rkt's columns)
    "uuid": "UUID", "app": "APP", "imagename": "IMAGE NAME", "imageid": "IMAGE ID",
    "state": "STATE", "created": "CREATED", "started": "STARTED", "networks": "NETWORKS",
}
POD_FIELDS = ("uuid", "state", "created", "started", "networks")  # shown once per pod
LIST_FLAGS = (
    Option("--full", is_flag=True, default=False,
           help="Full UUIDs, image IDs and absolute times."),
    Option("--no-legend", is_flag=True, default=False, help="No header line."),
    Option("--fields", help="Comma-separated columns: " + ", ".join(LIST_FIELDS)
           + " (default: all but imageid, which --full adds)."),
    Option("--format", "fmt", choices=("table", "json", "json-pretty"), default="table",
           show_default=True),
)


def list_fields(text: str | None, full: bool) -> list[str]:
    if text is None:
        return [f for f in LIST_FIELDS if f != "imageid" or full]
    fields = [f.strip().lower().replace(" ", "").replace("_", "") for f in text.split(",")
              if f.strip()]
    bad = [f for f in fields if f not in LIST_FIELDS]
    if bad or not fields:
        raise FieldError(f"unknown field(s) {', '.join(bad) or '(none)'}; choose from "
                         + ", ".join(LIST_FIELDS))
    return fields


def pod_ago(stamp: float | None) -> str:
    if stamp is None:
        return ""
    seconds = max(0, int(time.time() - stamp))
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def _list_cell(info: manage.PodInfo, app: manage.AppInfo, field: str, full: bool,
               when: Any) -> str:
    values = {
        "uuid": lambda: info.uuid if full else info.uuid[:8], "app": lambda: app.name,
        "imagename": lambda: app.image_name,
        "imageid": lambda: app.image_id if full else app.image_id[:19],
        "state": lambda: info.state, "created": lambda: when(info.created),
        "started": lambda: when(info.started), "networks": lambda: ",".join(info.networks),
    }
    return values[field]()


def list_command(client: ClientContext, full: bool, no_legend: bool, fields: str | None,
                 fmt: str) -> None:
    """List pods: UUID APP IMAGE NAME STATE CREATED STARTED NETWORKS."""
    from registry.launcher import manage  # here: loaded by the commands that list pods
    from registry.launcher.pods import list_pods

    columns = list_fields(fields, full)
    infos = [manage.describe(pod) for pod in list_pods(client.store_dir)]
    if fmt != "table":
        echo(jsontext.dumps([info.to_json() for info in infos],
                            indent=2 if fmt == "json-pretty" else None))
        return
    when = manage.format_time if full else pod_ago
    rows: list[list[str]] = []
    for info in infos:
        apps = info.apps or [manage.AppInfo("", "", "", None)]
        for index, app in enumerate(apps):
            rows.append(["" if index and field in POD_FIELDS else
                         _list_cell(info, app, field, full, when) for field in columns])
    table = rows if no_legend else [[LIST_FIELDS[f] for f in columns]] + rows
    if not table:
        return
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    for row in table:
        echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


# -- pyrkt status -------------------------------------------------------------------------------

STATUS_FLAGS = (
    Option("--wait", is_flag=True, default=False, help="Wait for the pod to exit first."),
    Option("--wait-timeout", convert=float, help="Give up waiting after N seconds."),
    Option("--format", "fmt", choices=("text", "json", "json-pretty"), default="text",
           show_default=True, help="text: rkt's key=value lines; json: one document for scripts."),
)


def status_command(client: ClientContext, wait: bool, wait_timeout: float | None, fmt: str,
                   uuid: str) -> None:
    """Show a pod's state and its apps' exit codes (key=value lines, as rkt)."""
    from registry.launcher import manage  # here: loaded by the commands that show pods
    from registry.launcher.pods import find_pod

    pod = find_pod(client.store_dir, uuid)
    if wait:
        pod = manage.wait_for_exit(pod, wait_timeout)
    if fmt != "text":
        echo(jsontext.dumps(manage.status_document(pod),
                            indent=2 if fmt == "json-pretty" else None))
        return
    for line in manage.status_lines(pod):
        echo(line)


# -- pyrkt image list ---------------------------------------------------------------------------

IMAGE_FIELDS = {  # --fields name -> column title
    "id": "ID", "name": "NAME", "size": "SIZE", "importtime": "IMPORT TIME",
    "lastused": "LAST USED", "labels": "LABELS",
}
DEFAULT_IMAGE_FIELDS = "id,name,size,importtime,lastused"
IMAGE_LIST_FLAGS = (
    Option("--fields", default=DEFAULT_IMAGE_FIELDS, show_default=True,
           help="comma-separated columns: " + ", ".join(IMAGE_FIELDS)),
    Option("--sort", "sort_by", default="importtime", show_default=True,
           help="the field to sort by"),
    Option("--order", choices=("asc", "desc"), default="asc", show_default=True),
    Option("--full", is_flag=True, default=False,
           help="full IDs, exact sizes and absolute times"),
    Option("--no-legend", is_flag=True, default=False, help="no header line"),
    Option("--format", "output", choices=("table", "json", "json-pretty"), default="table",
           show_default=True),
)


def image_fields(text: str) -> list[str]:
    fields = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in fields if f not in IMAGE_FIELDS]
    if bad or not fields:
        raise FieldError(f"unknown field(s) {', '.join(bad) or '(none)'}; choose from "
                         + ", ".join(IMAGE_FIELDS))
    return fields


def existing_store(client: ClientContext) -> ImageStore | None:
    """The store, or None when nothing was ever stored there (reading never creates it)."""
    if not os.path.isfile(os.path.join(client.store_dir, "index.db")):
        return None
    return client.store()


def image_ago(moment: float, now: float) -> str:
    """How long before `now` the moment was (seconds since the epoch, as the index keeps them:
    a table of "ago" needs no datetime, ~1 ms to import)."""
    seconds = int(now - moment)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now" if seconds < 5 else f"{seconds} seconds ago"


def _image_cell(img: StoredImage, field: str, full: bool, now: float) -> str:
    if field == "id":
        return img.id if full else img.short_id
    if field == "name":
        version = img.labels.get("version")
        return f"{img.name}:{version}" if version else img.name
    if field == "size":
        return str(img.size) if full else human_bytes(img.size)
    if field in ("importtime", "lastused"):
        if full:
            moment = img.import_time if field == "importtime" else img.last_used
            return moment.isoformat(timespec="seconds")
        return image_ago(img.import_stamp if field == "importtime" else img.last_used_stamp, now)
    return ",".join(f"{k}={v}" for k, v in sorted(img.labels.items()))


def _sort_key(field: str) -> Any:
    keys = {"id": lambda i: i.id, "name": lambda i: i.name, "size": lambda i: i.size,
            "importtime": lambda i: i.import_stamp, "lastused": lambda i: i.last_used_stamp,
            "labels": lambda i: sorted(i.labels.items())}
    return keys[field]


def check_image_list(fields: str, sort_by: str) -> tuple[list[str], str]:
    """The columns and the sort field (FieldError for a name of neither)."""
    return image_fields(fields), image_fields(sort_by)[0]


def image_list_command(client: ClientContext, fields: str, sort_by: str, order: str,
                       full: bool, no_legend: bool, output: str) -> None:
    """List the stored images (rkt's columns)."""
    columns, sort_field = check_image_list(fields, sort_by)
    store = existing_store(client)
    stored = store.list() if store is not None else []
    images = sorted(stored, key=_sort_key(sort_field), reverse=order == "desc")
    if output != "table":
        docs = [{"id": i.id, "name": i.name, "labels": i.labels, "size": i.size,
                 "import_time": i.import_time.isoformat(), "last_used": i.last_used.isoformat(),
                 "signed": i.has_signature} for i in images]
        echo(jsontext.dumps(docs, indent=2 if output == "json-pretty" else None))
        return
    now = time.time()
    rows = [[_image_cell(i, f, full, now) for f in columns] for i in images]
    if not no_legend:
        rows.insert(0, [IMAGE_FIELDS[f] for f in columns])
    widths = [max(len(row[c]) for row in rows) for c in range(len(columns))] if rows else []
    for row in rows:
        echo("  ".join(cell.ljust(widths[c]) for c, cell in enumerate(row)).rstrip())
