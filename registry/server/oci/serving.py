"""Streaming blobs and manifests out of storage with the headers OCI clients rely on."""

from __future__ import annotations

from flask import Response, redirect, send_file
from werkzeug.wrappers import Response as WsgiResponse

from registry.server.context import config, storage
from registry.server.httputil import streamed_response
from registry.server.storage import BlobNotFound, InvalidRange

from .errors import blob_unknown

BLOB_TYPE = "application/octet-stream"


IMMUTABLE = "private, max-age=31536000, immutable"
# A tag can move: caches must ask again (If-None-Match keeps that cheap).
REVALIDATE = "private, no-cache"


def content_response(key: str, digest: str, size: int, media_type: str = BLOB_TYPE,
                     *, ranges: bool = True, cache_control: str = IMMUTABLE) -> WsgiResponse:
    """GET/HEAD of stored content: Docker-Content-Digest, ETag, Range (206/416), If-None-Match.

    Content is addressed by digest, so what a digest names never changes (`IMMUTABLE`)."""
    backend = storage()
    settings = config()
    if ranges and settings.s3 is not None and settings.s3.presign:
        url = backend.presigned_url(key, content_type=media_type)
        if url:
            response = redirect(url, code=307)
            response.headers["Docker-Content-Digest"] = digest
            return response
    try:
        path = backend.local_path(key)
    except BlobNotFound:
        raise blob_unknown(digest) from None
    if path is not None and ranges:
        # sendfile, with Werkzeug's own Range and conditional handling.
        response = send_file(path, mimetype=media_type, conditional=True, etag=digest,
                             max_age=None)
    else:
        response = _streamed(key, digest, size, media_type, ranges=ranges)
    response.headers["Docker-Content-Digest"] = digest
    response.headers["Cache-Control"] = cache_control
    return response


def _streamed(key: str, digest: str, size: int, media_type: str, *, ranges: bool) -> Response:
    try:
        return streamed_response(key, etag=digest, size=size, mimetype=media_type, ranges=ranges)
    except (BlobNotFound, InvalidRange):
        raise blob_unknown(digest) from None
