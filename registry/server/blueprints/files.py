"""Distribution: the ACI, its `.aci.asc` and the armored public keys (discovery's URL layout).

Downloads carry the file's digest as a strong ETag, Last-Modified, Cache-Control, and honour
HEAD, Range (206) and If-None-Match (304). Local storage is sent with sendfile (through the
WSGI file wrapper); S3 is streamed or, if configured, redirected to a presigned URL. Private
repositories answer 404 to anyone without read access, exactly like a missing name.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from flask import Blueprint, Response, abort, request
from sqlalchemy import select
from werkzeug.wrappers import Response as WsgiResponse

from registry.discovery import (
    EXTENSIONS,
    FLASK_ACI_RULE,
    FLASK_PREFIX_PUBKEYS_RULE,
    FLASK_PUBKEYS_RULE,
    FLASK_QUAY_ACI_RULE,
    FLASK_QUAY_PUBKEYS_RULE,
    QUAY_EXTENSIONS,
)
from registry.server.auth import reader_actor
from registry.server.context import config, db, pulls, storage
from registry.server.httputil import blob_response
from registry.server.models import Image, Repository, aware
from registry.server.operations import mirror as mirrored
from registry.server.operations.mirror import mirror_for
from registry.server.services import keys
from registry.server.services.errors import NotFound, ServiceError
from registry.server.services.repositories import LATEST, resolve_tag, visible_or_none
from registry.server.storage import blob_key

bp = Blueprint("files", __name__)

ACI_MIMETYPE = "application/octet-stream"
SIGNATURE_MIMETYPE = "application/pgp-signature"
KEYS_MIMETYPE = "application/pgp-keys"


@bp.errorhandler(ServiceError)
def _service_error(error: ServiceError) -> WsgiResponse:
    # appc clients read the status; the one line says why (e.g. a mirror's upstream is down).
    return Response(error.message + "\n", status=error.status, mimetype="text/plain")


@bp.route(FLASK_ACI_RULE, methods=["GET", "HEAD"])
def aci_file(name: str, version: str, os: str, arch: str, ext: str) -> WsgiResponse:
    if ext not in EXTENSIONS:
        abort(404)
    actor = reader_actor()
    session = db()
    repository = visible_or_none(session, actor, name)
    if repository is None:
        mirror = mirror_for(session, name)
        if mirror is not None:
            return mirrored.serve_image_file(session, storage(), mirror, name, version, os,
                                             arch, ext)
        abort(404)
    tag = resolve_tag(session, repository, version, os, arch)
    if tag is None:
        abort(404)
    image = tag.image
    cache_control = _cache_control(repository, moving=version == LATEST)
    if ext == "aci.asc":
        if image.signature is None:
            abort(404)
        return _small(image.signature.armored, SIGNATURE_MIMETYPE, image.created_at, cache_control)
    response = _blob(image, cache_control)
    if request.method == "GET" and response.status_code in COUNTED and _from_the_start():
        pulls().count(repository.id, tag.version)
    return response


# A download (200), one from its first byte (206) or a redirect to storage (302); a 304 or a
# HEAD sends nothing.
COUNTED = (200, 206, 302)


def _from_the_start() -> bool:
    """A resumed download (Range from a later byte) is the same pull continuing."""
    ranges = request.range
    return ranges is None or ranges.ranges[0][0] == 0


@bp.route(FLASK_QUAY_ACI_RULE, methods=["GET", "HEAD"])
def quay_aci_file(name: str, version: str, kind: str, os: str, arch: str) -> WsgiResponse:
    """Quay's path for the same file: what a discovery page written for Quay points at."""
    ext = QUAY_EXTENSIONS.get(kind)
    if ext is None:
        abort(404)
    return aci_file(name, version, os, arch, ext)


@bp.route(FLASK_PUBKEYS_RULE, methods=["GET", "HEAD"])
@bp.route(FLASK_QUAY_PUBKEYS_RULE, methods=["GET", "HEAD"])
def server_pubkeys() -> WsgiResponse:
    return _keys_response(None)


@bp.route(FLASK_PREFIX_PUBKEYS_RULE, methods=["GET", "HEAD"])
def prefix_pubkeys(prefix: str) -> WsgiResponse:
    # The registry's keys, plus the keys registered for the repository of that exact name
    # when the caller may read it: the answer for a private name equals that for no name.
    prefix = prefix.strip("/")
    repository = visible_or_none(db(), reader_actor(), prefix)
    if repository is None:
        mirror = mirror_for(db(), prefix)
        if mirror is not None:  # the upstream's keys: clients verify mirrored images with them
            return mirrored.serve_pubkeys(db(), mirror, prefix)
    return _keys_response(repository)


def _keys_response(repository: Repository | None) -> WsgiResponse:
    try:
        armored = keys.published_keys(db(), repository)
    except NotFound:
        abort(404)
    return _small(armored, KEYS_MIMETYPE, None, "public, max-age=300")


def _cache_control(repository: Repository, *, moving: bool) -> str:
    visibility = "public" if repository.is_public else "private"
    # `latest` can move at any time: let caches keep it but revalidate by ETag every time.
    max_age = 0 if moving else config().cache_max_age
    return f"{visibility}, max-age={max_age}" + (", must-revalidate" if moving else "")


def _small(text: str, mimetype: str, modified: datetime | None,
           cache_control: str) -> WsgiResponse:
    body = text.encode()
    response = Response(body, mimetype=mimetype)
    response.set_etag(hashlib.sha256(body).hexdigest())
    if modified is not None:
        response.last_modified = aware(modified)
    response.headers["Cache-Control"] = cache_control
    return response.make_conditional(request)


def _blob(image: Image, cache_control: str) -> WsgiResponse:
    return blob_response(blob_key(image.digest), etag=image.digest, size=image.size,
                         mimetype=ACI_MIMETYPE, modified=aware(image.created_at),
                         cache_control=cache_control)


def image_by_digest(digest: str) -> Image | None:
    return db().scalar(select(Image).where(Image.digest == digest))
