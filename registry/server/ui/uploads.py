"""Uploading an ACI (and optionally its .aci.asc) from the repository page.

Two ways in, one service: the upload script sends the raw ACI as the request body (streamed
straight into services.upload, with the signature base64-encoded in a header and the CSRF
token in another); without JavaScript the form posts multipart, which Werkzeug spools to a
temporary file (never memory) before the same service reads it.
"""

from __future__ import annotations

import base64
import binascii
from typing import IO

from flask import flash, jsonify, request
from werkzeug.wrappers import Response

from registry.server.context import config, db, storage
from registry.server.services import upload
from registry.server.services.errors import BadRequest

from .blueprint import bp, see_other, wants_json
from .sessions import login_required, ui_actor
from .urls import repository_url

SIGNATURE_HEADER = "X-Pyrkt-Signature"


def _limits() -> upload.UploadLimits:
    settings = config()
    return upload.UploadLimits(max_upload=settings.max_upload,
                               max_uncompressed=settings.max_uncompressed)


def _multipart_parts() -> tuple[IO[bytes], bytes | None]:
    part = request.files.get("aci")
    if part is None or not part.filename:
        raise BadRequest("choose an .aci file to upload", code="empty")
    signature = None
    sig_part = request.files.get("signature")
    if sig_part is not None and sig_part.filename:
        signature = sig_part.stream.read(upload.MAX_SIGNATURE_SIZE + 1)
    return part.stream, signature


def _raw_parts() -> tuple[IO[bytes], bytes | None]:
    header = request.headers.get(SIGNATURE_HEADER)
    signature = None
    if header:
        try:
            signature = base64.b64decode(header, validate=True)
        except binascii.Error:
            raise BadRequest("the signature could not be read (not base64)",
                             code="bad-signature") from None
    return request.stream, signature


@bp.post("/r/<path:name>/-/upload")
@login_required
def image_upload(name: str) -> Response | tuple[Response, int]:
    actor = ui_actor()
    settings = config()
    # The checks that need no bytes first, so a refused upload is not streamed for nothing.
    upload.check_upload_allowed(db(), actor, name, settings.domains, _limits(),
                                request.content_length)
    multipart = request.mimetype == "multipart/form-data"
    body, signature = _multipart_parts() if multipart else _raw_parts()
    version = (request.form.get("version") if multipart else request.args.get("version")) or None
    result = upload.upload_image(db(), storage(), actor, name, body, domains=settings.domains,
                                 limits=_limits(), version=version, signature=signature)
    message = (f"Uploaded {name}:{result.version} for {result.os}/{result.arch}"
               f" — signed by {result.signed_by[-16:]}."
               if not result.unchanged else
               f"{name}:{result.version} for {result.os}/{result.arch} was already this image.")
    # Flashed in both cases: the upload script moves to the repository page, which shows it.
    flash(message, "success")
    if wants_json():
        return jsonify({"ok": True, "message": message, "redirect": repository_url(name),
                        **result.to_dict()}), 200 if result.unchanged else 201
    return see_other(repository_url(name))
