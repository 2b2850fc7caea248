"""Registry administration: its signing keys (generate, rotate, retire) and the audit log."""

from __future__ import annotations

from flask import flash, render_template, request, url_for
from werkzeug.wrappers import Response

from registry.server.bootstrap import key_user_id
from registry.server.context import config, db
from registry.server.services import audit, keys

from .blueprint import bp, see_other
from .sessions import admin_required, ui_actor

AUDIT_PAGE = 50


def _user_id() -> str:
    return key_user_id(config().domains[0])


@bp.post("/keys/generate")
@admin_required
def key_generate() -> Response:
    row = keys.generate_server_key(db(), ui_actor(), user_id=_user_id())
    flash(f"New signing key {row.fingerprint} is active.", "success")
    return see_other(url_for("ui.signing_keys"))


@bp.post("/keys/rotate")
@admin_required
def key_rotate() -> Response:
    row = keys.rotate_server_key(db(), ui_actor(), user_id=_user_id())
    flash(f"Rotated: {row.fingerprint} signs from now on; older keys are retired and stay "
          "published so existing signatures keep verifying.", "success")
    return see_other(url_for("ui.signing_keys"))


@bp.post("/keys/<fingerprint>/retire")
@admin_required
def key_retire(fingerprint: str) -> Response:
    row = keys.retire_key(db(), ui_actor(), fingerprint)
    flash(f"Key {row.fingerprint} retired (still published for verification).", "success")
    return see_other(url_for("ui.signing_keys"))


@bp.get("/audit")
@admin_required
def audit_log() -> str:
    before = request.args.get("before", type=int)
    events = audit.recent(db(), limit=AUDIT_PAGE, before_id=before)
    older = events[-1].id if len(events) == AUDIT_PAGE else None
    return render_template("ui/audit.html", events=events, older=older, before=before)
