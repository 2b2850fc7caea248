"""Streaming blobs and manifests out of storage with the headers OCI clients rely on."""

from __future__ import annotations

from flask import Response, redirect, request, send_file

from registry.server.context import config, storage
from registry.server.storage import BlobNotFound, InvalidRange, iter_chunks

from .errors import blob_unknown

BLOB_TYPE = "application/octet-stream"


IMMUTABLE = "private, max-age=31536000, immutable"
# A tag can move: caches must ask again (If-None-Match keeps that cheap).
REVALIDATE = "private, no-cache"


def content_response(key: str, digest: str, size: int, media_type: str = BLOB_TYPE,
                     *, ranges: bool = True, cache_control: str = IMMUTABLE) -> Response:
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
    response = Response(mimetype=media_type)
    response.headers["Content-Type"] = media_type
    response.set_etag(digest)
    if ranges:
        response.headers["Accept-Ranges"] = "bytes"
    if request.if_none_match.contains(digest):
        response.status_code = 304
        return response
    start, stop = 0, size
    byte_range = request.range if ranges else None
    if byte_range is not None:
        bounds = byte_range.range_for_length(size)
        if bounds is None:
            response.status_code = 416
            response.headers["Content-Range"] = f"bytes */{size}"
            return response
        start, stop = bounds
        response.status_code = 206
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    response.content_length = stop - start
    if request.method == "HEAD":
        return response
    try:
        reader = storage().open(key, start, stop)
    except (BlobNotFound, InvalidRange):
        raise blob_unknown(digest) from None
    response.response = iter_chunks(reader)
    response.direct_passthrough = True
    return response
