"""The audit log's CSV and JSON exports, streamed (the log may be long); the web UI and the
JSON API serve the same files."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from flask import Response, stream_with_context

from registry.server.models import AuditEvent
from registry.server.services import audit


def export_response(events: Iterable[AuditEvent], fmt: str) -> Response:
    """The audit export both the UI and the API serve (one format, one place)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if fmt == "csv":
        body: Iterator[str] = _csv_lines(events)
        mimetype = "text/csv"
    else:
        body = _json_lines(events)
        mimetype = "application/json"
    response = Response(stream_with_context(body), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{fmt}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _csv_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(audit.EXPORT_COLUMNS)
    for event in events:
        row = audit.export_row(event)
        row["details"] = json.dumps(row["details"], sort_keys=True)
        writer.writerow(["" if row[c] is None else row[c] for c in audit.EXPORT_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _json_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    yield '{"events": ['
    for index, event in enumerate(events):
        yield ("," if index else "") + "\n" + json.dumps(audit.export_row(event))
    yield "\n]}\n"
