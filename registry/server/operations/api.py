"""HTTP endpoints of running the registry: `/metrics`, and under `/_api/v1` retention
policies, protected versions, webhooks with their delivery log, and mirrors (JSON, tokens)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from registry.server.auth import api_actor
from registry.server.blueprints import api as core_api
from registry.server.blueprints.discovery import discovery_body
from registry.server.context import config, db, state
from registry.server.services.errors import BadRequest, Forbidden, ServiceError
from registry.server.state import EXTENSION

from . import metrics, mirror, retention, webhook_admin, webhooks

bp = Blueprint("operations", __name__)
API = "/_api/v1"

bp.register_error_handler(ServiceError, core_api._service_error)
bp.register_error_handler(HTTPException, core_api._http_error)


def install(app: Flask) -> None:
    """Register the endpoints and, when metrics are on, count every request."""
    app.register_blueprint(bp)
    if app.extensions[EXTENSION].config.metrics:
        @app.before_request
        def _label_endpoint() -> None:
            request.environ[metrics.ENDPOINT_KEY] = request.endpoint or "unmatched"

        app.wsgi_app = metrics.MetricsMiddleware(app.wsgi_app)  # type: ignore[method-assign]


# -- /metrics ------------------------------------------------------------------------------------
@bp.get("/metrics")
@bp.get("/_metrics")
def scrape() -> Response:
    settings = config()
    if not settings.metrics:
        return Response("metrics are switched off (PYRKT_REGISTRY_METRICS=0)\n", status=404,
                        mimetype="text/plain")
    if not metrics.allowed(request.remote_addr, request.headers.get("Authorization"),
                           networks=settings.metrics_allow, token=settings.metrics_token or ""):
        return Response("metrics are readable from the addresses in metrics_allow or with the "
                        "metrics token\n", status=403, mimetype="text/plain")
    body, content_type = metrics.exposition(state().sessions)
    return Response(body, mimetype=content_type.split(";")[0],
                    headers={"Content-Type": content_type, "Cache-Control": "no-store"})


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("expected a JSON object as the request body", code="bad-json")
    return data


def _optional_int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{key} must be a whole number or null", code="bad-policy")
    return value


# -- retention -----------------------------------------------------------------------------------
@bp.get(f"{API}/retention")
def registry_policy() -> Response:
    return jsonify(retention.get_policy(db(), api_actor(), None))


@bp.get(f"{API}/repositories/<path:name>/-/retention")
def repository_policy(name: str) -> Response:
    return jsonify(retention.get_policy(db(), api_actor(), name))


@bp.put(f"{API}/retention")
@bp.put(f"{API}/repositories/<path:name>/-/retention")
def set_policy(name: str | None = None) -> Response:
    data = _body()
    retention.set_policy(db(), api_actor(), name, keep_last=_optional_int(data, "keep_last"),
                         max_age_days=_optional_int(data, "max_age_days"))
    return jsonify(retention.get_policy(db(), api_actor(), name))


@bp.delete(f"{API}/retention")
@bp.delete(f"{API}/repositories/<path:name>/-/retention")
def remove_policy(name: str | None = None) -> Response:
    retention.set_policy(db(), api_actor(), name, keep_last=None, max_age_days=None)
    return jsonify(retention.get_policy(db(), api_actor(), name))


@bp.get(f"{API}/retention/plan")
def retention_plan() -> Response:
    if not api_actor().is_site_admin:
        raise Forbidden("only an administrator may list what retention would delete")
    return jsonify({"deleted": [d.to_dict() for d in retention.plan(db())], "dry_run": True})


@bp.put(f"{API}/repositories/<path:name>/-/versions/<version>/protected")
def protect_version(name: str, version: str) -> Response:
    retention.protect(db(), api_actor(), name, version, protected=True)
    return jsonify({"repository": name, "version": version, "protected": True})


@bp.delete(f"{API}/repositories/<path:name>/-/versions/<version>/protected")
def unprotect_version(name: str, version: str) -> Response:
    retention.protect(db(), api_actor(), name, version, protected=False)
    return jsonify({"repository": name, "version": version, "protected": False})


# -- webhooks ------------------------------------------------------------------------------------
@bp.get(f"{API}/webhooks")
def list_webhooks() -> Response:
    return jsonify({"webhooks": [webhooks.describe(h)
                                 for h in webhook_admin.list_webhooks(db(), api_actor())]})


@bp.post(f"{API}/webhooks")
def create_webhook() -> tuple[Response, int]:
    data = _body()
    events = data.get("events", list(webhooks.EVENTS))
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise BadRequest("events must be a list of event names", code="bad-webhook")
    hook = webhook_admin.create_webhook(
        db(), api_actor(), str(data.get("url", "")), events=events,
        repository=data.get("repository"), description=str(data.get("description", "")),
        secret=data.get("secret"))
    # The secret is shown this once: receivers need it to check the signature header.
    return jsonify({**webhooks.describe(hook), "secret": hook.secret}), 201


@bp.get(f"{API}/webhooks/<int:hook_id>")
def get_webhook(hook_id: int) -> Response:
    return jsonify(webhooks.describe(webhook_admin.get_webhook(db(), api_actor(), hook_id)))


@bp.patch(f"{API}/webhooks/<int:hook_id>")
def update_webhook(hook_id: int) -> Response:
    enabled = _body().get("enabled")
    if not isinstance(enabled, bool):
        raise BadRequest("give {\"enabled\": true|false}", code="bad-webhook")
    return jsonify(webhooks.describe(webhook_admin.set_enabled(db(), api_actor(), hook_id,
                                                                 enabled)))


@bp.delete(f"{API}/webhooks/<int:hook_id>")
def delete_webhook(hook_id: int) -> Response:
    webhook_admin.delete_webhook(db(), api_actor(), hook_id)
    return jsonify({"deleted": hook_id})


@bp.get(f"{API}/webhooks/<int:hook_id>/deliveries")
def webhook_deliveries(hook_id: int) -> Response:
    rows = webhook_admin.deliveries(db(), api_actor(), hook_id,
                                    limit=request.args.get("limit", 100, type=int))
    return jsonify({"deliveries": [webhooks.describe_delivery(d) for d in rows]})


# -- mirrors -------------------------------------------------------------------------------------
@bp.get(f"{mirror.DISCOVERY_ROOT}/<path:name>")
def mirrored_discovery(name: str) -> Response:
    """Discovery for a name hosted upstream: the same tags as for our own names, pointing at
    this registry's layout; clients reach it through a domains.d "mirror" entry."""
    name = name.strip("/")
    if mirror.mirror_for(db(), name) is None:
        return Response(f"{name} is not under a mirrored prefix here\n", status=404,
                        mimetype="text/plain")
    response = Response(discovery_body(config().base_url, name), mimetype="text/html")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response



@bp.get(f"{API}/mirrors")
def list_mirrors() -> Response:
    if not api_actor().is_site_admin:
        raise Forbidden("only an administrator may list mirrors")
    return jsonify({"mirrors": [mirror.describe(m, db()) for m in mirror.list_mirrors(db())]})


@bp.post(f"{API}/mirrors")
def add_mirror() -> tuple[Response, int]:
    data = _body()
    row = mirror.add_mirror(db(), api_actor(), str(data.get("prefix", "")),
                            domains=config().domains, allow_http=bool(data.get("allow_http")),
                            port=_optional_int(data, "port"), ca_bundle=data.get("ca_bundle"))
    return jsonify(mirror.describe(row, db())), 201


@bp.delete(f"{API}/mirrors/<path:prefix>")
def remove_mirror(prefix: str) -> Response:
    mirror.remove_mirror(db(), api_actor(), prefix)
    return jsonify({"removed": prefix})
