"""The OCI distribution API under `/v2/` (what docker, skopeo, podman and containerd speak).

Endpoints (the distribution spec's names):
    GET  /v2/                                   base: 200, or 401 with the bearer challenge
    GET  /v2/token                              token endpoint of the bearer flow
    GET  /v2/_catalog?n=&last=                  repositories the caller may read
    GET  /v2/NAME/tags/list?n=&last=            tags, paginated with a Link header
    GET|HEAD|PUT|DELETE /v2/NAME/manifests/REF  REF: a tag or sha256:<hex>
    GET|HEAD|DELETE     /v2/NAME/blobs/DIGEST
    POST /v2/NAME/blobs/uploads/[?digest=|?mount=&from=]
    GET|PATCH|PUT|DELETE /v2/NAME/blobs/uploads/UUID[?digest=]
NAME maps to the registry's appc repository names as oci.names explains.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select
from werkzeug.wrappers import Response as WsgiResponse

from registry.server.auth import api_actor
from registry.server.context import config, db, db_if_open, pulls, storage
from registry.server.httputil import BODY_METHODS, drain_request_body
from registry.server.models import Repository
from registry.server.outage import outage_response, safe_rollback
from registry.server.services import repositories
from registry.server.services.errors import ServiceError
from registry.server.storage import BlobNotFound, StorageError

from . import blobs, manifests, tokens
from .access import (
    Caller,
    authorize,
    current_caller,
    existing,
    find_repository,
    grants_for,
    secret,
    unauthorized,
)
from .errors import OciError, blob_unknown
from .models import OciManifest
from .names import appc_name, check_digest, is_digest, oci_name
from .serving import IMMUTABLE, REVALIDATE, content_response

bp = Blueprint("oci", __name__, url_prefix="/v2")

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")


@bp.after_request
def _version_header(response: Response) -> WsgiResponse:
    response.headers[API_VERSION[0]] = API_VERSION[1]
    return response


@bp.errorhandler(OciError)
def _oci_error(error: OciError) -> tuple[WsgiResponse, int]:
    safe_rollback(db_if_open())
    _drain_body()
    response = jsonify(error.to_dict())
    response.headers.update(error.headers)
    return response, error.status


@bp.errorhandler(ServiceError)
def _service_error(error: ServiceError) -> tuple[WsgiResponse, int]:
    codes = {401: "UNAUTHORIZED", 403: "DENIED", 404: "NAME_UNKNOWN", 413: "SIZE_INVALID",
             429: "TOOMANYREQUESTS"}
    retry_after = getattr(error, "retry_after", None)
    return _oci_error(OciError(error.message, status=error.status,
                               code=codes.get(error.status, "UNSUPPORTED"),
                               headers={"Retry-After": str(retry_after)} if retry_after else None))


@bp.errorhandler(StorageError)
def _storage_error(error: StorageError) -> tuple[WsgiResponse, int] | WsgiResponse:
    if isinstance(error, BlobNotFound):
        # A row names a blob the storage lost (gc reports it): unknown to clients, not a crash.
        return _oci_error(OciError(f"blob content is missing from storage: {error}",
                                   status=404, code="BLOB_UNKNOWN"))
    return outage_response(error, config().retry_after)


def _drain_body() -> None:
    """Read (and drop) some of a refused request's body so the client sees our answer rather
    than a reset connection."""
    if request.method in BODY_METHODS:
        drain_request_body()


def _limit() -> int:
    return config().max_upload


def _spool() -> blobs.Spool:
    return blobs.Spool(blobs.spool_dir(config().tmp_dir))


def _push_target(caller: Caller, name: str) -> tuple[str, Repository | None]:
    """The appc name a push goes to and its repository (None: created by the push)."""
    return appc_name(name, config().domains), authorize(caller, name, "push")


def _ensure(caller: Caller, name: str, repository: Repository | None) -> Repository:
    """The repository, created in the current transaction by the first push that stores
    something: a refused or abandoned push leaves no empty repository behind."""
    if repository is not None:
        return repository
    found = find_repository(name)
    if found is not None:
        return found
    domains = config().domains
    # Two first pushes into one new name may race here: ensure_repository gives both the row.
    return repositories.ensure_repository(db(), caller.actor, appc_name(name, domains), domains)


# -- base, token, catalog ------------------------------------------------------------------
@bp.get("/")
def base() -> WsgiResponse:
    caller = current_caller()
    if caller.actor.is_anonymous and caller.grant is None:
        raise unauthorized("authentication required: use the bearer token flow")
    return jsonify({})


@bp.get("/token")
def token() -> WsgiResponse:
    """The token endpoint (distribution's token auth spec): Basic credentials, or none."""
    try:
        actor = api_actor(required=False)
    except ServiceError as error:
        raise OciError(error.message, status=401, code="UNAUTHORIZED") from None
    scopes = tokens.parse_scopes(request.args.getlist("scope"))
    access = grants_for(actor, scopes)
    plain, grant = tokens.issue(secret(), actor.user.id if actor.user else None, access,
                                token_id=actor.token.id if actor.token else None)
    issued = datetime.fromtimestamp(grant.expires - tokens.LIFETIME_SECONDS, UTC)
    return jsonify({"token": plain, "access_token": plain, "expires_in": tokens.LIFETIME_SECONDS,
                    "issued_at": issued.isoformat().replace("+00:00", "Z")})


@bp.get("/_catalog")
def catalog() -> WsgiResponse:
    caller = current_caller()
    if caller.grant is not None and not caller.grant.allows("registry:catalog", "*"):
        raise unauthorized("this token does not cover the catalog", "registry:catalog:*")
    n = manifests.page_size(request.args.get("n"))
    last = request.args.get("last") or ""
    session = db()
    with_content = set(session.scalars(select(OciManifest.repository_id).distinct()).all())
    domains = config().domains
    names = sorted(oci_name(r.name, domains)
                   for r in repositories.list_repositories(session, caller.actor)
                   if r.id in with_content)
    after = [name for name in names if name > last]
    page = after[:n] if n else []
    response = jsonify({"repositories": page})
    if n and len(after) > n:
        _link_next(response, "/v2/_catalog", n, page[-1])
    return response


def _link_next(response: Response, path: str, n: int, last: str) -> None:
    response.headers["Link"] = f'<{path}?{urlencode({"n": n, "last": last})}>; rel="next"'


# -- tags and manifests ----------------------------------------------------------------------
@bp.get("/<path:name>/tags/list")
def tag_list(name: str) -> WsgiResponse:
    repository = existing(current_caller(), name, "pull")
    n = manifests.page_size(request.args.get("n"))
    names, more = manifests.list_tags(db(), repository, n, request.args.get("last"))
    response = jsonify({"name": name, "tags": names})
    if more:
        _link_next(response, f"/v2/{name}/tags/list", n, names[-1])
    return response


@bp.route("/<path:name>/manifests/<reference>", methods=["GET", "HEAD"])
def get_manifest(name: str, reference: str) -> WsgiResponse:
    repository = existing(current_caller(), name, "pull")
    manifest = manifests.find_manifest(db(), repository, reference)
    response = content_response(blobs.storage_key(manifest.digest), manifest.digest,
                                manifest.size, manifest.media_type, ranges=False,
                                cache_control=IMMUTABLE if is_digest(reference) else REVALIDATE)
    if request.method == "GET" and response.status_code == 200:
        # A pull of a tag (services.pulls says why only tagged manifests count).
        tag = reference if not is_digest(reference) else min(
            (t.name for t in manifest.tags), default=None)
        if tag is not None:
            pulls().count(repository.id, tag)
    return response


@bp.put("/<path:name>/manifests/<reference>")
def put_manifest(name: str, reference: str) -> tuple[WsgiResponse, int]:
    caller = current_caller()
    _target, repository = _push_target(caller, name)
    manifest = manifests.put_manifest(db(), storage(), caller.actor, repository,
                                      lambda: _ensure(caller, name, repository), reference,
                                      request.headers.get("Content-Type", ""), request.stream)
    response = Response(status=201)
    response.headers["Location"] = f"/v2/{name}/manifests/{manifest.digest}"
    response.headers["Docker-Content-Digest"] = manifest.digest
    return response, 201


@bp.delete("/<path:name>/manifests/<reference>")
def delete_manifest(name: str, reference: str) -> tuple[WsgiResponse, int]:
    caller = current_caller()
    repository = existing(caller, name, "delete")
    manifests.delete_reference(db(), caller.actor, repository, reference)
    return Response(status=202), 202


# -- blobs -------------------------------------------------------------------------------------
@bp.route("/<path:name>/blobs/<digest>", methods=["GET", "HEAD"])
def get_blob(name: str, digest: str) -> WsgiResponse:
    repository = existing(current_caller(), name, "pull")
    check_digest(digest)
    found = blobs.linked(db(), repository, digest)
    if found is None:
        raise blob_unknown(digest)
    return content_response(blobs.storage_key(digest), digest, found.size)


@bp.delete("/<path:name>/blobs/<digest>")
def delete_blob(name: str, digest: str) -> tuple[WsgiResponse, int]:
    """Unlinks the blob from this repository (other repositories keep their links)."""
    repository = existing(current_caller(), name, "delete")
    check_digest(digest)
    found = blobs.linked(db(), repository, digest)
    if found is None:
        raise blob_unknown(digest)
    db().delete(found)
    db().commit()
    return Response(status=202), 202


@bp.post("/<path:name>/blobs/uploads/")
def start_upload(name: str) -> tuple[WsgiResponse, int]:
    caller = current_caller()
    target, repository = _push_target(caller, name)
    session = db()
    digest = request.args.get("digest")
    if digest is not None:
        check_digest(digest)
        size = blobs.store_verified(storage(), request.stream, digest, _limit())
        blobs.link(session, _ensure(caller, name, repository), digest, size)
        session.commit()
        return _created(name, digest)
    if _mount(caller, name, repository, request.args.get("mount"), request.args.get("from")):
        return _created(name, str(request.args.get("mount")))
    row = blobs.start_upload(session, _spool(), target, repository)
    return _upload_status(name, row.id, 0, 202)


def _mount(caller: Caller, name: str, repository: Repository | None, digest: str | None,
           source: str | None) -> bool:
    """Link a blob the caller may read in `source` without copying; False: upload instead."""
    if not digest or not source:
        return False
    check_digest(digest)
    try:
        origin = existing(caller, source, "pull")
    except OciError:
        return False  # the spec's fallback: an upload session, revealing nothing about `source`
    found = blobs.linked(db(), origin, digest)
    if found is None:
        return False
    blobs.link(db(), _ensure(caller, name, repository), digest, found.size)
    db().commit()
    return True


def _created(name: str, digest: str) -> tuple[WsgiResponse, int]:
    response = Response(status=201)
    response.headers["Location"] = f"/v2/{name}/blobs/{digest}"
    response.headers["Docker-Content-Digest"] = digest
    return response, 201


def _upload_status(name: str, upload_id: str, size: int, status: int) -> tuple[WsgiResponse, int]:
    response = Response(status=status)
    response.headers["Location"] = f"/v2/{name}/blobs/uploads/{quote(upload_id)}"
    response.headers["Range"] = blobs.range_header(size)
    response.headers["Docker-Upload-UUID"] = upload_id
    response.content_length = 0
    return response, status


@bp.get("/<path:name>/blobs/uploads/<upload_id>")
def upload_status(name: str, upload_id: str) -> tuple[WsgiResponse, int]:
    target, _repository = _push_target(current_caller(), name)
    row = blobs.get_upload(db(), target, upload_id)
    return _upload_status(name, row.id, row.size, 204)


@bp.patch("/<path:name>/blobs/uploads/<upload_id>")
def upload_chunk(name: str, upload_id: str) -> tuple[WsgiResponse, int]:
    target, _repository = _push_target(current_caller(), name)
    row = blobs.get_upload(db(), target, upload_id)
    size = blobs.append(db(), _spool(), row, request.stream,
                        request.headers.get("Content-Range"), _limit())
    return _upload_status(name, row.id, size, 202)


@bp.put("/<path:name>/blobs/uploads/<upload_id>")
def finish_upload(name: str, upload_id: str) -> tuple[WsgiResponse, int]:
    caller = current_caller()
    target, repository = _push_target(caller, name)
    session = db()
    row = blobs.get_upload(session, target, upload_id)
    digest = request.args.get("digest")
    try:
        check_digest(digest)
    except OciError:
        blobs.cancel(session, _spool(), row)
        raise
    assert digest is not None
    if request.content_length or request.headers.get("Transfer-Encoding"):
        blobs.append(session, _spool(), row, request.stream,
                     request.headers.get("Content-Range"), _limit())
    size = blobs.finish(session, storage(), _spool(), row, digest, _limit())
    blobs.link(session, _ensure(caller, name, repository), digest, size)
    blobs.forget(session, _spool(), row)
    session.commit()
    return _created(name, digest)


@bp.delete("/<path:name>/blobs/uploads/<upload_id>")
def cancel_upload(name: str, upload_id: str) -> tuple[WsgiResponse, int]:
    target, _repository = _push_target(current_caller(), name)
    row = blobs.get_upload(db(), target, upload_id)
    blobs.cancel(db(), _spool(), row)
    return Response(status=204), 204


@bp.route("/<path:rest>", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
def unknown_endpoint(rest: str) -> WsgiResponse:
    """Anything else under /v2/ gets a distribution-style error, not the HTML of a page."""
    raise OciError(f"no /v2/ endpoint answers {request.method} /v2/{rest}", status=404,
                   code="UNSUPPORTED")
