"""`/_health`: for load balancers and compose health checks (database and storage reachable)."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from registry.server.context import db, storage
from registry.server.storage import StorageError

bp = Blueprint("health", __name__)


@bp.get("/_health")
def health():  # type: ignore[no-untyped-def]
    problems = []
    try:
        db().execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure means unhealthy
        problems.append(f"database: {error.__class__.__name__}")
    try:
        storage().check()
    except StorageError as error:
        problems.append(f"storage: {error}")
    status = 503 if problems else 200
    return jsonify({"ok": not problems, "problems": problems}), status
