"""Registry administration: its signing keys (generate, rotate, retire) and the audit log."""

from __future__ import annotations

from flask import abort, flash, render_template, request, url_for
from werkzeug.wrappers import Response

from registry.server.audit_export import export_response
from registry.server.bootstrap import key_user_id
from registry.server.context import config, db
from registry.server.services import audit, keys, repositories

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


def audit_filter() -> audit.AuditFilter:
    """The filters of the audit page and its exports, from the query string."""
    return audit.AuditFilter(actor=request.args.get("user", "").strip(),
                             repository=request.args.get("repository", "").strip(),
                             action=request.args.get("action", "").strip())


@bp.get("/audit")
@admin_required
def audit_log() -> str:
    before = request.args.get("before", type=int)
    where = audit_filter()
    events = audit.recent(db(), limit=AUDIT_PAGE, before_id=before, where=where)
    older = events[-1].id if len(events) == AUDIT_PAGE else None
    actors, actions = audit.choices(db())
    return render_template("ui/audit.html", events=events, older=older, before=before,
                           where=where, actors=actors, actions=actions,
                           repository_names=[r.name for r in repositories.list_repositories(
                               db(), ui_actor())])


@bp.get("/audit.<fmt>")
@admin_required
def audit_export(fmt: str) -> Response:
    """Every event the filters match, as CSV or JSON (streamed: the log may be long)."""
    if fmt not in ("csv", "json"):
        abort(404)
    return export_response(audit.every(db(), audit_filter()), fmt)
