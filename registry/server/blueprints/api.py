"""The JSON API under `/_api/v1` (token authentication; every error is JSON).

Repository names contain slashes, so per-repository routes put `/-/` between the name and
the action (`/_api/v1/repositories/example.com/team/app/-/images`): no AC name has a `-`
segment, so the split is never ambiguous.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from registry import __version__
from registry.server.audit_export import export_response
from registry.server.auth import api_actor
from registry.server.bootstrap import key_user_id
from registry.server.context import config, db, db_if_open, storage
from registry.server.httputil import BODY_METHODS, drain_request_body
from registry.server.markdown import render_markdown
from registry.server.models import ApiToken, AuditEvent, Repository, SigningKey, Tag, User
from registry.server.oci.blobs import spool_dir
from registry.server.oci.listing import VersionRow, all_versions
from registry.server.oci.offer import CONVERTING, convert_tag
from registry.server.outage import safe_rollback
from registry.server.services import (
    audit,
    gc,
    keys,
    pulls,
    repositories,
    robots,
    tokens,
    upload,
    users,
)
from registry.server.services.actor import Actor
from registry.server.services.errors import BadRequest, Forbidden, ServiceError

bp = Blueprint("api", __name__, url_prefix="/_api/v1")

SIGNATURE_HEADER = "X-Pyrkt-Signature"


@bp.errorhandler(ServiceError)
def _service_error(error: ServiceError) -> tuple[Response, int]:
    safe_rollback(db_if_open())
    _drain_body()
    response = jsonify(error.to_dict())
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="pyrkt"'
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response, error.status


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> tuple[Response, int]:
    _drain_body()
    code = (error.name or "error").lower().replace(" ", "-")
    return jsonify({"error": {"code": code, "message": error.description}}), error.code or 500


def _drain_body() -> None:
    if request.method in BODY_METHODS:
        drain_request_body()


def _limits() -> upload.UploadLimits:
    settings = config()
    return upload.UploadLimits(max_upload=settings.max_upload,
                               max_uncompressed=settings.max_uncompressed)


def _json() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("expected a JSON object as the request body", code="bad-json")
    return data


def _flag(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


# -- serialisation --------------------------------------------------------------------------
def repository_json(repo: Repository) -> dict[str, Any]:
    # `latest`: what `:latest` resolves to (as on the web page); `latest_marked`: the owner's
    # mark (PUT .../-/latest), None when `latest` follows the newest push.
    return {"name": repo.name, "public": repo.is_public, "description": repo.description,
            "latest": repositories.latest_version(db(), repo), "latest_marked": repo.latest_version,
            "created": repo.created_at.isoformat()}


def tag_json(tag: Tag) -> dict[str, Any]:
    image = tag.image
    return {
        "version": tag.version, "os": tag.os, "arch": tag.arch,
        "image_id": image.image_id, "digest": image.digest, "size": image.size,
        "labels": image.labels, "created": tag.created_at.isoformat(),
        "signed_by": image.signature.key_fingerprint if image.signature else None,
    }


def key_json(key: SigningKey) -> dict[str, Any]:
    return {"fingerprint": key.fingerprint, "user_ids": key.user_ids.splitlines(),
            "status": key.status.value, "created": key.created_at.isoformat(),
            "retired": key.retired_at.isoformat() if key.retired_at else None}


def user_json(user: User) -> dict[str, Any]:
    return {"username": user.username, "admin": user.is_admin,
            "created": user.created_at.isoformat()}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def token_json(token: ApiToken) -> dict[str, Any]:
    return {"id": token.id, "user": token.user.username, "robot": token.user.is_robot,
            "description": token.description, "hint": token.hint, "scope": token.scope,
            "repository": token.repository.name if token.repository else None,
            "state": tokens.state_of(token), "created": token.created_at.isoformat(),
            "expires": _iso(token.expires_at), "last_used": _iso(token.last_used_at),
            "last_used_from": token.last_used_addr, "revoked": _iso(token.revoked_at)}


def robot_json(robot: User) -> dict[str, Any]:
    return {"name": robot.username, "description": robot.description,
            "created": robot.created_at.isoformat(),
            "roles": [{"repository": repo, "role": role.value}
                      for repo, role in robots.robot_roles(db(), Actor.operator(), robot.username)]}


def version_json(row: VersionRow, pulls_by_version: dict[str, int]) -> dict[str, Any]:
    """One version however it arrived; `image` is null until an OCI tag is converted."""
    return {"version": row.version, "os": row.os, "arch": row.arch, "source": row.source,
            "state": row.state, "error": row.error or None, "oci_digest": row.oci_digest,
            "created": row.created.isoformat(), "pulls": pulls_by_version.get(row.version, 0),
            "image": tag_json(row.tag) if row.tag else None}


def versions_of(repo: Repository) -> tuple[list[dict[str, Any]], int]:
    totals = pulls.version_totals(db(), repo)
    rows = all_versions(db(), storage(), repo)
    return [version_json(r, totals) for r in rows], sum(totals.values())


def event_json(event: AuditEvent) -> dict[str, Any]:
    return audit.export_row(event)


# -- registry --------------------------------------------------------------------------------
@bp.route("/<path:unknown>", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
def no_such_endpoint(unknown: str) -> tuple[Response, int]:
    # Without this, the discovery catch-all would answer unknown API paths with an HTML 404.
    return jsonify({"error": {"code": "no-such-endpoint",
                              "message": f"no API endpoint {request.method} /_api/v1/{unknown}"}}), 404


@bp.get("/")
def info() -> Response:
    settings = config()
    return jsonify({"pyrkt": __version__, "base_url": settings.base_url,
                    "domains": list(settings.domains), "max_upload": settings.max_upload})


@bp.get("/whoami")
def whoami() -> Response:
    actor = api_actor()
    assert actor.user is not None
    return jsonify(user_json(actor.user))


# -- repositories ----------------------------------------------------------------------------
@bp.get("/repositories")
def list_repositories() -> Response:
    actor = api_actor(required=False)
    found = repositories.list_repositories(db(), actor, search=request.args.get("q", ""))
    return jsonify({"repositories": [repository_json(r) for r in found]})


@bp.post("/repositories")
def create_repository() -> tuple[Response, int]:
    actor = api_actor()
    data = _json()
    repo = repositories.create_repository(
        db(), actor, str(data.get("name", "")), config().domains,
        public=bool(data.get("public", True)), description=str(data.get("description", "")))
    return jsonify(repository_json(repo)), 201


@bp.get("/repositories/<path:name>")
def get_repository(name: str) -> Response:
    actor = api_actor(required=False)
    repo = repositories.get_repository(db(), actor, name)
    tags = repositories.list_tags(db(), actor, name)
    versions, total = versions_of(repo)
    return jsonify({**repository_json(repo), "description_html": str(render_markdown(
        repo.description or "")), "pulls": total, "images": [tag_json(t) for t in tags],
        "versions": versions})


@bp.get("/repositories/<path:name>/-/versions")
def list_versions(name: str) -> Response:
    """Every version: appc uploads, converted OCI pushes and OCI tags not converted yet."""
    repo = repositories.get_repository(db(), api_actor(required=False), name)
    versions, total = versions_of(repo)
    return jsonify({"versions": versions, "pulls": total})


@bp.post("/repositories/<path:name>/-/versions/<version>/convert")
def convert_version(name: str, version: str) -> tuple[Response, int]:
    """Convert an OCI tag for ?os=&arch= (default linux/amd64) now, as its first fetch would."""
    actor = api_actor(required=False)
    repo = repositories.get_repository(db(), actor, name)
    state = convert_tag(db(), actor, repo, version, request.args.get("os", "linux"),
                        request.args.get("arch", "amd64"))
    return jsonify({"version": version, "state": state}), 202 if state == CONVERTING else 200


@bp.get("/repositories/<path:name>/-/pulls")
def repository_pulls(name: str) -> Response:
    """Pulls per day (?days=, 1-366, default 90) and per version."""
    repo = repositories.get_repository(db(), api_actor(required=False), name)
    days = max(1, min(request.args.get("days", pulls.CHART_DAYS, type=int), 366))
    daily = pulls.daily(db(), repo, days)
    return jsonify({"total": pulls.repository_total(db(), repo),
                    "versions": pulls.version_totals(db(), repo),
                    "days": [{"day": d.isoformat(), "pulls": n} for d, n in daily]})


@bp.patch("/repositories/<path:name>")
def update_repository(name: str) -> Response:
    actor = api_actor()
    data = _json()
    public = data.get("public")
    description = data.get("description")
    repo = repositories.update_repository(
        db(), actor, name, public=None if public is None else bool(public),
        description=None if description is None else str(description))
    return jsonify(repository_json(repo))


@bp.delete("/repositories/<path:name>")
def delete_repository(name: str) -> Response:
    repositories.delete_repository(db(), api_actor(), name)
    return jsonify({"deleted": name})


@bp.get("/repositories/<path:name>/-/images")
def list_images(name: str) -> Response:
    tags = repositories.list_tags(db(), api_actor(required=False), name)
    return jsonify({"images": [tag_json(t) for t in tags]})


@bp.get("/repositories/<path:name>/-/upload")
def upload_preflight(name: str) -> Response:
    """Checks an upload would be accepted (credentials, role, size) before any byte is sent."""
    size = request.args.get("size", type=int)
    upload.check_upload_allowed(db(), api_actor(), name, config().domains, _limits(), size)
    return jsonify({"ok": True, "max_upload": config().max_upload})


@bp.post("/repositories/<path:name>/-/images")
def upload_image(name: str) -> tuple[Response, int]:
    """Body: the ACI (raw, or multipart field `aci` with optional `signature`).

    A raw upload passes its detached signature base64-encoded in X-Pyrkt-Signature.
    Query: `version` (when the manifest has no version label), `public` for a new repository.
    """
    actor = api_actor()
    settings = config()
    length = request.content_length
    upload.check_upload_allowed(db(), actor, name, settings.domains, _limits(), length)
    signature: bytes | None = None
    if request.mimetype == "multipart/form-data":
        # Werkzeug spools multipart files to disk before we see them: bound that spool too
        # (the form's own overhead is small next to the 1 MiB allowance).
        request.max_content_length = settings.max_upload + 1024 * 1024
        part = request.files.get("aci")
        if part is None:
            raise BadRequest("multipart upload without an 'aci' file field", code="empty")
        body = part.stream
        sig_part = request.files.get("signature")
        if sig_part is not None and sig_part.filename:
            signature = sig_part.stream.read(upload.MAX_SIGNATURE_SIZE + 1)
    else:
        body = request.stream
        header = request.headers.get(SIGNATURE_HEADER)
        if header:
            try:
                signature = base64.b64decode(header, validate=True)
            except binascii.Error:
                raise BadRequest(f"{SIGNATURE_HEADER} is not base64", code="bad-signature") from None
    result = upload.upload_image(
        db(), storage(), actor, name, body, domains=settings.domains, limits=_limits(),
        version=request.args.get("version") or None, signature=signature,
        public=_flag(request.args.get("public"), True))
    return jsonify(result.to_dict()), 200 if result.unchanged else 201


@bp.delete("/repositories/<path:name>/-/versions/<version>")
def delete_version(name: str, version: str) -> Response:
    removed = repositories.delete_version(db(), api_actor(), name, version,
                                          os=request.args.get("os"), arch=request.args.get("arch"))
    return jsonify({"deleted": removed})


@bp.put("/repositories/<path:name>/-/latest")
def set_latest(name: str) -> Response:
    version = _json().get("version")
    repo = repositories.set_latest(db(), api_actor(), name,
                                   None if version is None else str(version))
    return jsonify(repository_json(repo))


@bp.get("/repositories/<path:name>/-/keys")
def list_repository_keys(name: str) -> Response:
    repo = repositories.get_repository(db(), api_actor(required=False), name)
    return jsonify({"keys": [key_json(k) for k in keys.repository_keys(db(), repo)]})


@bp.post("/repositories/<path:name>/-/keys")
def register_repository_key(name: str) -> tuple[Response, int]:
    body = request.get_data(cache=False)
    if len(body) > 1024 * 1024:
        raise BadRequest("key block larger than 1 MiB", code="bad-key")
    added = keys.register_repository_key(db(), api_actor(), name, body)
    return jsonify({"added": [key_json(k) for k in added]}), 201


@bp.delete("/repositories/<path:name>/-/keys/<fingerprint>")
def remove_repository_key(name: str, fingerprint: str) -> Response:
    keys.remove_repository_key(db(), api_actor(), name, fingerprint)
    return jsonify({"removed": fingerprint.upper()})


@bp.get("/repositories/<path:name>/-/roles")
def list_roles(name: str) -> Response:
    roles = repositories.list_roles(db(), api_actor(), name)
    return jsonify({"roles": [{"user": u, "role": r.value} for u, r in roles]})


@bp.put("/repositories/<path:name>/-/roles/<username>")
def set_role(name: str, username: str) -> Response:
    role = _json().get("role")
    repositories.grant_role(db(), api_actor(), name, username,
                            None if role is None else repositories.parse_role(str(role)))
    return jsonify({"user": username, "role": role})


# -- the registry's signing keys --------------------------------------------------------------
@bp.get("/keys")
def list_server_keys() -> Response:
    return jsonify({"keys": [key_json(k) for k in keys.server_keys(db())]})


@bp.post("/keys")
def generate_server_key() -> tuple[Response, int]:
    row = keys.generate_server_key(db(), api_actor(), user_id=_key_user_id())
    return jsonify(key_json(row)), 201


@bp.post("/keys/rotate")
def rotate_server_key() -> tuple[Response, int]:
    row = keys.rotate_server_key(db(), api_actor(), user_id=_key_user_id())
    return jsonify(key_json(row)), 201


@bp.post("/keys/<fingerprint>/retire")
def retire_server_key(fingerprint: str) -> Response:
    return jsonify(key_json(keys.retire_key(db(), api_actor(), fingerprint)))


def _key_user_id() -> str:
    return key_user_id(config().domains[0])


# -- users and tokens -------------------------------------------------------------------------
@bp.get("/users")
def list_users() -> Response:
    return jsonify({"users": [user_json(u) for u in users.list_users(db(), api_actor())]})


@bp.post("/users")
def create_user() -> tuple[Response, int]:
    data = _json()
    user = users.create_user(db(), api_actor(), str(data.get("username", "")),
                             str(data.get("password", "")), is_admin=bool(data.get("admin")))
    return jsonify(user_json(user)), 201


@bp.delete("/users/<username>")
def delete_user(username: str) -> Response:
    users.delete_user(db(), api_actor(), username)
    return jsonify({"deleted": username})


@bp.get("/users/<username>/tokens")
def list_tokens(username: str) -> Response:
    found = tokens.list_tokens(db(), api_actor(), username)
    return jsonify({"tokens": [token_json(t) for t in found]})


@bp.post("/users/<username>/tokens")
def create_token(username: str) -> tuple[Response, int]:
    """JSON: description, scope (read|push|admin; admin), repository (one name; all),
    expires_in_days (a number or "never"; 90)."""
    data = request.get_json(silent=True) or {}
    if not isinstance(data, dict):
        raise BadRequest("expected a JSON object as the request body", code="bad-json")
    repository = data.get("repository")
    token, plain = tokens.create_token(
        db(), api_actor(), username, str(data.get("description", "")),
        scope=tokens.parse_scope(str(data.get("scope", "admin"))),
        repository=str(repository) if repository else None,
        expires_in_days=tokens.parse_expiry(data.get("expires_in_days",
                                                     tokens.DEFAULT_EXPIRY_DAYS)))
    return jsonify({**token_json(token), "token": plain}), 201


# -- robot accounts -----------------------------------------------------------------------------
@bp.get("/robots")
def list_robots() -> Response:
    return jsonify({"robots": [robot_json(r) for r in robots.list_robots(db(), api_actor())]})


@bp.post("/robots")
def create_robot() -> tuple[Response, int]:
    data = _json()
    robot = robots.create_robot(db(), api_actor(), str(data.get("name", "")),
                                str(data.get("description", "")))
    return jsonify(robot_json(robot)), 201


@bp.get("/robots/<name>")
def get_robot(name: str) -> Response:
    actor = api_actor()
    robots.list_robots(db(), actor)  # the administrators' check
    return jsonify(robot_json(robots.get_robot(db(), name)))


@bp.delete("/robots/<name>")
def delete_robot(name: str) -> Response:
    robots.delete_robot(db(), api_actor(), name)
    return jsonify({"deleted": name})


@bp.delete("/tokens/<int:token_id>")
def revoke_token(token_id: int) -> Response:
    return jsonify(token_json(tokens.revoke_token(db(), api_actor(), token_id)))


# -- audit and maintenance ----------------------------------------------------------------------
@bp.get("/audit")
def audit_log() -> Response:
    actor = api_actor()
    if not actor.is_site_admin:
        raise Forbidden("only an administrator may read the audit log")
    where = audit.AuditFilter(actor=request.args.get("user", ""),
                              repository=request.args.get("repository", ""),
                              action=request.args.get("action", ""))
    export = request.args.get("format")
    if export is not None:
        if export not in ("csv", "json"):
            raise BadRequest(f"format={export!r}: use csv or json", code="bad-format")
        return export_response(audit.every(db(), where), export)
    events = audit.recent(db(), limit=request.args.get("limit", 100, type=int),
                          before_id=request.args.get("before", type=int), where=where)
    return jsonify({"events": [event_json(e) for e in events]})


@bp.post("/gc")
def run_gc() -> Response:
    actor = api_actor()
    if not actor.is_site_admin:
        raise Forbidden("only an administrator may collect garbage")
    report = gc.collect_garbage(db(), storage(), actor,
                                dry_run=_flag(request.args.get("dry_run"), False),
                                oci_spool_dir=spool_dir(config().tmp_dir))
    return jsonify(report.to_dict())
