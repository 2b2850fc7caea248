"""HTTP plumbing the blueprints share: streaming stored content with conditional and range
handling, and draining the body of a refused request."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from flask import Response, abort, redirect, request, send_file
from werkzeug.wrappers import Response as WsgiResponse
from werkzeug.wsgi import wrap_file

from registry.server.context import config, storage
from registry.server.storage import BlobNotFound, InvalidRange, iter_chunks

# After an early rejection, read (and drop) at most this much of the request body so the
# client gets the answer instead of a connection reset.
DRAIN_LIMIT = 64 * 1024 * 1024
BODY_METHODS = ("POST", "PUT", "PATCH")


def drain_request_body() -> None:
    """Read and drop up to DRAIN_LIMIT bytes of the current request's body."""
    remaining = DRAIN_LIMIT
    try:
        while remaining > 0 and (chunk := request.stream.read(min(remaining, 1024 * 1024))):
            remaining -= len(chunk)
    except (OSError, ValueError):
        pass


def streamed_response(key: str, *, etag: str, size: int, mimetype: str, ranges: bool = True,
                      honour_if_range: bool = False, last_modified: datetime | None = None,
                      cache_control: str | None = None) -> Response:
    """GET/HEAD of the stored blob `key` without a seekable local file: our own If-None-Match
    (304) and, when `ranges`, Range (206/416) handling; `honour_if_range` serves the whole
    blob when an If-Range header names anything but `etag`.

    Raises the storage's BlobNotFound / InvalidRange when the blob cannot be opened: the
    caller answers in its own protocol."""
    response = Response(mimetype=mimetype)
    response.headers["Content-Type"] = mimetype
    response.set_etag(etag)
    if last_modified is not None:
        response.last_modified = last_modified
    if cache_control is not None:
        response.headers["Cache-Control"] = cache_control
    if ranges:
        response.headers["Accept-Ranges"] = "bytes"
    if request.if_none_match.contains(etag):
        response.status_code = 304
        return response
    start, stop = 0, size
    byte_range = request.range if ranges else None
    if byte_range is not None and (not honour_if_range or _if_range_matches(etag)):
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
    reader = storage().open(key, start, stop)
    response.response = iter_chunks(reader)
    response.direct_passthrough = True
    return response


def _if_range_matches(etag: str) -> bool:
    if_range = request.if_range
    if if_range.etag is None and if_range.date is None:
        return True
    return if_range.etag == etag


def blob_response(key: str, *, etag: str, size: int, mimetype: str, modified: datetime,
                  cache_control: str) -> WsgiResponse:
    """A stored blob as a download: a presigned redirect when S3 is set to presign, sendfile
    for local storage, else streamed with our own conditional and Range handling. A blob the
    storage does not have is a 404."""
    backend = storage()
    settings = config()
    if settings.s3 is not None and settings.s3.presign:
        url = backend.presigned_url(key, content_type=mimetype)
        if url:
            response = redirect(url, code=302)
            response.headers["Cache-Control"] = "no-store"
            return response
    try:
        path = backend.local_path(key)
    except BlobNotFound:
        abort(404)
    if path is not None:
        response = send_file(path, mimetype=mimetype, conditional=True, etag=etag,
                             last_modified=modified, max_age=None)
        response.headers["Cache-Control"] = cache_control
        if response.status_code == 206 and request.method != "HEAD":
            _range_from_the_file(response, path)
        return response
    try:
        return streamed_response(key, etag=etag, size=size, mimetype=mimetype,
                                 honour_if_range=True, last_modified=modified,
                                 cache_control=cache_control)
    except (BlobNotFound, InvalidRange):
        abort(404)


class _FileRange:
    """The bytes [start, start + length) of an open file, positioned at start: gunicorn sends a
    file wrapper with sendfile(2) from the descriptor's offset for Content-Length bytes, and
    whoever iterates it instead (TLS, the development server) reads no further than the end."""

    def __init__(self, file: BinaryIO, start: int, length: int) -> None:
        file.seek(start)
        self.file = file
        self.remaining = length

    def fileno(self) -> int:
        return self.file.fileno()

    def read(self, size: int = -1) -> bytes:
        size = self.remaining if size < 0 else min(size, self.remaining)
        data = self.file.read(size) if size else b""
        self.remaining -= len(data)
        return data

    def close(self) -> None:
        self.file.close()


def _range_from_the_file(response: WsgiResponse, path: Path) -> None:
    """Werkzeug answers a Range request (206, after every conditional rule) with a wrapper
    that reads the file through Python in 8 KiB blocks, reading and dropping everything before
    the range's start under gunicorn, where the file wrapper cannot seek: a resumed download
    of a large image read it all. The same range, served from a file positioned at its start,
    goes out with sendfile like a whole download."""
    content_range = response.content_range
    if content_range.start is None or content_range.stop is None:
        return
    opened = response.response
    if hasattr(opened, "close"):
        opened.close()  # the file send_file opened
    length = content_range.stop - content_range.start
    body = _FileRange(path.open("rb"), content_range.start, length)
    # The file wrappers need only fileno, read and close of it (IO[bytes] is what they declare).
    response.response = wrap_file(request.environ, body)  # type: ignore[arg-type]
    response.content_length = length
