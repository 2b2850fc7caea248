"""Manifests and tags: push with verification, pull by tag or digest, delete, list by pages.

Manifests are small JSON documents, so one is read whole (at most MAX_MANIFEST_SIZE bytes,
refused beyond that without reading further); its bytes are stored like any blob, under
their digest, and the row records the media type they are served with.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import IO, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from registry.docker import INDEX_TYPES, MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST
from registry.server.models import Repository, Tag, utcnow
from registry.server.services import audit
from registry.server.services.actor import Actor
from registry.server.storage import BlobStorage

from .blobs import link, linked, storage_key
from .errors import OciError, digest_invalid, manifest_unknown
from .models import OciBlobLink, OciConversion, OciManifest, OciTag
from .names import check_reference, is_digest

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
# A tag list page never holds more than this, whatever `n` the client asks for.
MAX_PAGE = 1000

# The media types the docker2aci side reads (registry.docker) are the ones accepted here.
MEDIA_TYPES = MANIFEST_TYPES + INDEX_TYPES
# Content types that say nothing: the document's own mediaType decides then.
_GENERIC_TYPES = ("", "application/json", "application/octet-stream")


def invalid(message: str, status: int = 400) -> OciError:
    return OciError(message, status=status, code="MANIFEST_INVALID")


def read_body(body: IO[bytes]) -> bytes:
    data = body.read(MAX_MANIFEST_SIZE + 1)
    if len(data) > MAX_MANIFEST_SIZE:
        raise invalid(f"manifest larger than the {MAX_MANIFEST_SIZE} byte limit", status=413)
    if not data:
        raise invalid("empty manifest: send the manifest JSON as the request body")
    return data


def parse(data: bytes, content_type: str) -> tuple[dict[str, Any], str]:
    """The document and the media type it is served with; MANIFEST_INVALID when unusable."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise invalid(f"manifest is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise invalid("manifest is not a JSON object")
    if document.get("schemaVersion") != 2:
        raise invalid("only schemaVersion 2 manifests are accepted (Docker schema 1 is not)")
    declared = document.get("mediaType")
    given = content_type.split(";", 1)[0].strip().lower()
    if given in _GENERIC_TYPES:
        given = ""
    if declared is not None and given and declared != given:
        raise invalid(f"Content-Type {given!r} differs from the manifest's mediaType {declared!r}")
    media_type = given or declared or (OCI_INDEX if "manifests" in document else OCI_MANIFEST)
    if media_type not in MEDIA_TYPES:
        raise OciError(f"unsupported manifest media type {media_type!r} (accepted: "
                       f"{', '.join(MEDIA_TYPES)})", status=415, code="MANIFEST_INVALID")
    return document, media_type


def references(document: dict[str, Any], media_type: str) -> list[str]:
    """The digests a manifest points at: config and layers, or an index's manifests."""
    if media_type in INDEX_TYPES:
        descriptors = document.get("manifests")
        if not isinstance(descriptors, list):
            raise invalid("image index without a manifests list")
    else:
        layers = document.get("layers")
        if not isinstance(document.get("config"), dict) or not isinstance(layers, list):
            raise invalid("image manifest without config and layers")
        descriptors = [document["config"], *layers]
    digests: list[str] = []
    for descriptor in descriptors:
        digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
        if not isinstance(digest, str) or not is_digest(digest):
            raise invalid(f"descriptor with a bad or unsupported digest: {digest!r}")
        if "urls" in descriptor:
            raise invalid("descriptors with external urls (non-distributable layers) are refused")
        digests.append(digest)
    return digests


def put_manifest(session: Session, storage: BlobStorage, actor: Actor,
                 repository: Repository | None, ensure: Callable[[], Repository],
                 reference: str, content_type: str, body: IO[bytes]) -> OciManifest:
    """Verify and store a manifest. `repository` None: a push into a new repository, which
    `ensure()` creates (in this transaction) once the manifest is known to be acceptable."""
    check_reference(reference)
    data = read_body(body)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if is_digest(reference) and reference != digest:
        raise digest_invalid(f"the manifest's digest is {digest}, not {reference}")
    document, media_type = parse(data, content_type)
    for child in references(document, media_type):
        known: OciManifest | OciBlobLink | None
        if repository is None:
            known = None
        elif media_type in INDEX_TYPES:
            known = _manifest_by_digest(session, repository, child)
        else:
            known = linked(session, repository, child)
        if known is None:
            raise OciError(f"the manifest refers to {child}, which is not in this repository: "
                           "push it first", code="MANIFEST_BLOB_UNKNOWN", detail={"digest": child})
    repository = ensure()
    with storage.upload() as temp:
        temp.write(data)
        storage.commit(temp, storage_key(digest))
    manifest = _manifest_by_digest(session, repository, digest)
    if manifest is None:
        manifest = OciManifest(repository_id=repository.id, digest=digest, media_type=media_type,
                               size=len(data))
        session.add(manifest)
        session.flush()
    link(session, repository, digest, len(data))
    if not is_digest(reference):
        _set_tag(session, repository, reference, manifest)
    audit.record(session, actor, "oci.manifest.push", f"{repository.name}:{reference}",
                 digest=digest, media_type=media_type)
    session.commit()
    return manifest


def _set_tag(session: Session, repository: Repository, name: str, manifest: OciManifest) -> None:
    tag = session.scalar(select(OciTag).where(OciTag.repository_id == repository.id,
                                              OciTag.name == name))
    if tag is None:
        session.add(OciTag(repository_id=repository.id, name=name, manifest_id=manifest.id))
    elif tag.manifest_id != manifest.id:
        tag.manifest_id, tag.updated_at = manifest.id, utcnow()
        forget_conversions(session, repository, name)


def _manifest_by_digest(session: Session, repository: Repository, digest: str
                        ) -> OciManifest | None:
    return session.scalar(select(OciManifest).where(OciManifest.repository_id == repository.id,
                                                    OciManifest.digest == digest))


def find_manifest(session: Session, repository: Repository, reference: str) -> OciManifest:
    """The manifest a tag or digest names; MANIFEST_UNKNOWN otherwise."""
    check_reference(reference)
    if is_digest(reference):
        manifest = _manifest_by_digest(session, repository, reference)
    else:
        manifest = session.scalar(
            select(OciManifest).join(OciTag, OciTag.manifest_id == OciManifest.id)
            .where(OciTag.repository_id == repository.id, OciTag.name == reference))
    if manifest is None:
        raise manifest_unknown(reference)
    return manifest


def delete_reference(session: Session, actor: Actor, repository: Repository,
                     reference: str) -> None:
    """Delete a tag, or a manifest by digest together with every tag pointing at it."""
    manifest = find_manifest(session, repository, reference)
    if is_digest(reference):
        for tag in manifest.tags:
            forget_conversions(session, repository, tag.name)
        session.delete(manifest)
        session.execute(delete(OciBlobLink).where(OciBlobLink.repository_id == repository.id,
                                                  OciBlobLink.digest == manifest.digest))
    else:
        forget_conversions(session, repository, reference)
        session.execute(delete(OciTag).where(OciTag.repository_id == repository.id,
                                             OciTag.name == reference))
    audit.record(session, actor, "oci.manifest.delete", f"{repository.name}:{reference}",
                 digest=manifest.digest)
    session.commit()


def forget_conversions(session: Session, repository: Repository, version: str) -> None:
    """A tag moved or went away: the ACIs converted from it are no longer what it names.

    Their appc versions are removed (only those the conversion made: a native upload of the
    same version is left alone), so the next request converts the new content.
    """
    conversions = session.scalars(select(OciConversion).where(
        OciConversion.repository_id == repository.id, OciConversion.version == version)).all()
    for conversion in conversions:
        for tag in session.scalars(select(Tag).where(
                Tag.repository_id == repository.id, Tag.version == version,
                Tag.os == conversion.os, Tag.arch == conversion.arch)).all():
            if tag.image.digest == conversion.image_digest:
                session.delete(tag)
        session.delete(conversion)


def page_size(value: str | None) -> int:
    """`n` of a paginated list: capped at MAX_PAGE (a billion just means "as many as you may")."""
    if value is None or value == "":
        return MAX_PAGE
    if not value.isdigit() or len(value) > 30:
        raise OciError(f"n={value!r} is not a non-negative integer",
                       code="PAGINATION_NUMBER_INVALID")
    return min(int(value), MAX_PAGE)


def list_tags(session: Session, repository: Repository, n: int, last: str | None
              ) -> tuple[list[str], bool]:
    """Up to `n` tag names after `last` in lexical order, and whether more follow."""
    if n == 0:
        return [], False
    query = select(OciTag.name).where(OciTag.repository_id == repository.id)
    if last:
        query = query.where(OciTag.name > last)
    names = list(session.scalars(query.order_by(OciTag.name).limit(n + 1)).all())
    return names[:n], len(names) > n
