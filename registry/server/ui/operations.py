"""Running the registry from the web (administrators): retention policies and protected
versions, webhooks with their delivery log, pull-through mirrors. The rules are the services'
in registry.server.operations; these views only read forms and show results."""

from __future__ import annotations

from flask import flash, render_template, request, url_for
from werkzeug.wrappers import Response

from registry.server.context import config, db
from registry.server.operations import mirror, retention, webhook_admin, webhooks
from registry.server.services.errors import BadRequest

from .blueprint import bp, see_other
from .sessions import admin_required, ui_actor


def _number(field: str) -> int | None:
    text = request.form.get(field, "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise BadRequest(f"{field.replace('_', ' ')}: give a whole number, or leave it empty",
                         code="bad-policy")
    return int(text)


def _back() -> Response:
    return see_other(url_for("ui.operations"))


@bp.get("/operations")
@admin_required
def operations() -> str:
    session, actor = db(), ui_actor()
    policies = [retention.get_policy(session, actor, None)]
    policies += [retention.get_policy(session, actor, name)
                 for name in retention.repositories_with_policies(session)]
    return render_template(
        "ui/operations.html", policies=policies, doomed=retention.plan(session),
        hooks=webhook_admin.list_webhooks(session, actor),
        deliveries=webhook_admin.deliveries(session, actor, limit=20),
        mirrors=[mirror.describe(m, session) for m in mirror.list_mirrors(session)],
        events=webhooks.EVENTS, mirror_url=config().base_url + mirror.DISCOVERY_ROOT,
        secret=request.args.get("secret"))


@bp.post("/retention")
@admin_required
def retention_set() -> Response:
    name = request.form.get("repository", "").strip() or None
    keep_last, max_age = _number("keep_last"), _number("max_age_days")
    retention.set_policy(db(), ui_actor(), name, keep_last=keep_last, max_age_days=max_age)
    where = name or "Registry-wide"
    flash(f"{where}: retention policy {'removed' if keep_last is None and max_age is None else 'saved'}. "
          "It applies at the next garbage collection.", "success")
    return _back()


@bp.post("/retention/protect")
@admin_required
def version_protect() -> Response:
    name = request.form.get("repository", "").strip()
    version = request.form.get("version", "").strip()
    protected = request.form.get("protected", "1") == "1"
    retention.protect(db(), ui_actor(), name, version, protected=protected)
    flash(f"{name}:{version} is {'protected' if protected else 'no longer protected'}.", "success")
    return _back()


@bp.post("/webhooks")
@admin_required
def webhook_create() -> Response:
    chosen = [e for e in webhooks.EVENTS if request.form.get(f"event_{e}")]
    hook = webhook_admin.create_webhook(
        db(), ui_actor(), request.form.get("url", "").strip(), events=chosen,
        repository=request.form.get("repository", "").strip() or None,
        description=request.form.get("description", "").strip())
    flash(f"Webhook {hook.id} created. Its secret is shown once, below: give it to the receiver "
          "to check the X-Pyrkt-Signature header.", "success")
    return see_other(url_for("ui.operations", secret=hook.secret) + "#webhooks")


@bp.post("/webhooks/<int:hook_id>/enabled")
@admin_required
def webhook_enable(hook_id: int) -> Response:
    enabled = request.form.get("enabled") == "1"
    webhook_admin.set_enabled(db(), ui_actor(), hook_id, enabled)
    flash(f"Webhook {hook_id} {'enabled' if enabled else 'paused'}.", "success")
    return _back()


@bp.post("/webhooks/<int:hook_id>/delete")
@admin_required
def webhook_delete(hook_id: int) -> Response:
    webhook_admin.delete_webhook(db(), ui_actor(), hook_id)
    flash(f"Webhook {hook_id} deleted with its delivery log.", "success")
    return _back()


@bp.get("/webhooks/<int:hook_id>")
@admin_required
def webhook_log(hook_id: int) -> str:
    session, actor = db(), ui_actor()
    return render_template("ui/webhook.html", hook=webhook_admin.get_webhook(session, actor, hook_id),
                           deliveries=webhook_admin.deliveries(session, actor, hook_id, limit=200))


@bp.post("/mirrors")
@admin_required
def mirror_add() -> Response:
    port = _number("port")
    row = mirror.add_mirror(db(), ui_actor(), request.form.get("prefix", ""),
                            domains=config().domains,
                            allow_http=request.form.get("allow_http") == "on", port=port)
    flash(f"Mirroring {row.prefix}.", "success")
    return _back()


@bp.post("/mirrors/remove")
@admin_required
def mirror_remove() -> Response:
    prefix = request.form.get("prefix", "")
    mirror.remove_mirror(db(), ui_actor(), prefix)
    flash(f"{prefix} is no longer mirrored.", "success")
    return _back()
