"""Publishing an ACI: stream, validate, sign or verify, then make it visible in one step.

The body streams into a storage upload (a temporary blob) while SHA-256 and the appc image ID
are computed in the same pass (registry.aci.read_aci reads through a tee). Only after every
check passes is the blob committed under its content address and the index rows committed;
any rejection leaves storage and database exactly as they were (except a database failure
after the blob's commit, which leaves the blob to gc: see _publish).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import IO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.aci import ACIError, read_aci
from registry.errors import PyrktError
from registry.server.models import Image, Repository, Role, Signature, Tag
from registry.server.storage import BlobStorage, Upload, blob_key
from registry.signing import SigningError, sign_detached, verify_detached

from . import audit
from .access import has_role, not_found_for_upload
from .actor import Actor
from .errors import BadRequest, Conflict, Forbidden, TooLarge
from .keys import active_server_key, verification_keys
from .names import check_hosted_name, check_version
from .repositories import ensure_repository

READ_CHUNK = 1024 * 1024
MAX_SIGNATURE_SIZE = 64 * 1024


@dataclass(frozen=True)
class UploadLimits:
    max_upload: int
    max_uncompressed: int | None = None


@dataclass(frozen=True)
class UploadResult:
    repository: str
    version: str
    os: str
    arch: str
    image_id: str
    digest: str
    size: int
    signed_by: str
    # True when this exact file was already stored (identical images are stored once).
    deduplicated: bool
    # True when the same version/os/arch already pointed at this very image (an idempotent retry).
    unchanged: bool

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def target_repository(
    session: Session, actor: Actor, name: str, domains: tuple[str, ...]
) -> Repository | None:
    """The repository an upload goes to, after the permission checks.

    Returns None when it does not exist yet and the actor may create it (site administrators);
    others get the same 404 as for a private repository they cannot see.
    """
    check_hosted_name(name, domains)
    repository = session.scalar(select(Repository).where(Repository.name == name))
    if repository is None:
        if actor.is_site_admin:
            return None
        raise not_found_for_upload(name)
    if not has_role(session, actor, repository, Role.WRITE):
        if not has_role(session, actor, repository, Role.READ) and not repository.is_public:
            raise not_found_for_upload(name)
        raise Forbidden(f"you need the write role on {name!r} to upload", code="no-role")
    return repository


def check_upload_allowed(
    session: Session, actor: Actor, name: str, domains: tuple[str, ...],
    limits: UploadLimits, size: int | None,
) -> None:
    """The checks that need no bytes (a client's preflight before streaming gigabytes)."""
    target_repository(session, actor, name, domains)
    if size is not None and size > limits.max_upload:
        raise _too_large(limits)


def upload_image(
    session: Session,
    storage: BlobStorage,
    actor: Actor,
    name: str,
    body: IO[bytes],
    *,
    domains: tuple[str, ...],
    limits: UploadLimits,
    version: str | None = None,
    signature: bytes | None = None,
    public: bool = True,
) -> UploadResult:
    repository = target_repository(session, actor, name, domains)
    if version is not None:
        check_version(version)
    if signature is not None and len(signature) > MAX_SIGNATURE_SIZE:
        raise BadRequest("signature larger than 64 KiB: not a detached signature",
                         code="bad-signature")
    with storage.upload() as temp:
        digest, info = _receive(body, temp, limits)
        # Signing and verification read the temporary file by path: flush Python's buffer.
        temp.flush()
        manifest = info.manifest
        image_version, os_name, arch = _check_manifest(manifest, name, version)
        armored, signer = _signature(session, repository, temp, signature)
        result = _publish(
            session, storage, actor, temp, repository, name, public=public,
            digest=digest, info=info, version=image_version, os=os_name, arch=arch,
            signature=armored, signer=signer, signature_given=signature is not None,
        )
    return result


class _Tee:
    """A reader for read_aci that copies every byte into the upload and hashes it."""

    def __init__(self, source: IO[bytes], sink: Upload, limit: int) -> None:
        self._source = source
        self._sink = sink
        self._limit = limit
        self.size = 0
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        want = READ_CHUNK if size is None or size < 0 else size
        data = self._source.read(want)
        if data:
            self.size += len(data)
            if self.size > self._limit:
                raise _TooBig()
            self.sha256.update(data)
            self._sink.write(data)
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(READ_CHUNK):
            pass


class _TooBig(PyrktError):
    """Internal signal from the size-capping reader; `_receive` turns it into `TooLarge`."""


def _too_large(limits: UploadLimits) -> TooLarge:
    return TooLarge(f"upload larger than this registry's limit of {limits.max_upload} bytes",
                    code="too-large")


def _receive(body: IO[bytes], temp: Upload, limits: UploadLimits):  # type: ignore[no-untyped-def]
    tee = _Tee(body, temp, limits.max_upload)
    try:
        info = read_aci(tee, max_uncompressed=limits.max_uncompressed)
        # read_aci reads to EOF; draining makes sure trailing bytes are hashed and stored too.
        tee.drain()
    except _TooBig:
        raise _too_large(limits) from None
    except ACIError as error:
        reason = getattr(error, "reason", None)
        raise BadRequest(f"invalid ACI: {error}", code=f"invalid-aci{'-' + reason if reason else ''}") from error
    if tee.size == 0:
        raise BadRequest("empty upload: send the ACI file as the request body", code="empty")
    return "sha256:" + tee.sha256.hexdigest(), info


def _check_manifest(manifest, name: str, version: str | None) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    if manifest.name != name:
        raise BadRequest(f"image name {manifest.name!r} does not match repository {name!r}",
                         code="name-mismatch")
    os_name, arch = manifest.label("os"), manifest.label("arch")
    missing = [label for label, value in (("os", os_name), ("arch", arch)) if not value]
    if missing:
        raise BadRequest(f"manifest lacks the {' and '.join(missing)} label(s): discovery needs "
                         "os and arch (e.g. acbuild label add os linux)", code="missing-labels")
    label_version = manifest.label("version")
    if label_version is not None and version is not None and label_version != version:
        raise BadRequest(f"version {version!r} differs from the manifest's version label "
                         f"{label_version!r}", code="version-mismatch")
    chosen = label_version or version
    if chosen is None:
        raise BadRequest("no version: add a version label to the manifest or pass ?version=",
                         code="missing-version")
    for what, value in (("os", os_name), ("arch", arch)):
        if "/" in str(value):
            raise BadRequest(f"label {what}={value!r} cannot be served (holds '/')", code="bad-label")
    return check_version(chosen), str(os_name), str(arch)


def _signature(session: Session, repository: Repository | None, temp: Upload,
               given: bytes | None) -> tuple[bytes, str]:
    """The armored signature to serve and its key's fingerprint: the uploader's, verified,
    or a new one by the registry's active key."""
    if given is not None:
        try:
            signer = verify_detached(given, temp.temp_path, verification_keys(session, repository))
        except SigningError as error:
            raise BadRequest(f"signature rejected: {error}", code="bad-signature") from error
        return given, signer.fingerprint
    key = active_server_key(session)
    return sign_detached(key, temp.temp_path), key.fingerprint


def _publish(
    session: Session, storage: BlobStorage, actor: Actor, temp: Upload,
    repository: Repository | None, name: str, *, public: bool, digest: str, info, version: str,  # type: ignore[no-untyped-def]
    os: str, arch: str, signature: bytes, signer: str, signature_given: bool,
) -> UploadResult:
    if repository is None:
        # The first upload into a new name creates the repository (in this transaction); a
        # concurrent first upload into the same name gets the same row instead of a conflict.
        # Done before the image row, as every upload does, so concurrent uploads take the locks
        # of a new repository and a new image in the same order (no deadlock on PostgreSQL).
        repository = ensure_repository(session, actor, name, (name.split("/", 1)[0],),
                                       public=public)
    image = session.scalar(select(Image).where(Image.digest == digest))
    deduplicated = image is not None
    tag = session.scalar(select(Tag).where(Tag.repository_id == repository.id,
                                           Tag.version == version, Tag.os == os, Tag.arch == arch))
    if tag is not None and (image is None or tag.image_pk != image.id):
        raise Conflict(f"{name}:{version} for {os}/{arch} already exists with another image; "
                       "delete that version first", code="version-exists")
    unchanged = tag is not None
    if image is None:
        image = Image(digest=digest, image_id=info.image_id, name=name, size=temp.size,
                      uncompressed_size=info.uncompressed_size, compression=str(info.compression),
                      manifest=info.manifest_bytes.decode("utf-8"),
                      labels={label.name: label.value for label in info.manifest.labels})
        session.add(image)
        try:
            session.flush()
        except IntegrityError as error:
            # The same file is being published by a concurrent upload right now.
            session.rollback()
            raise Conflict("an identical image is being uploaded at this moment; retry",
                           code="upload-race") from error
    text = signature.decode("ascii", errors="replace")
    if image.signature is None:
        image.signature = Signature(key_fingerprint=signer, armored=text)
    elif signature_given:
        # The owner's own signature replaces one the registry made for an earlier upload.
        image.signature.key_fingerprint, image.signature.armored = signer, text
    if not unchanged:
        session.add(Tag(repository=repository, image=image, version=version, os=os, arch=arch))
    audit.record(session, actor, "image.upload", f"{name}:{version}", os=os, arch=arch,
                 image_id=info.image_id, digest=digest, signed_by=signer,
                 deduplicated=deduplicated or None)
    key = blob_key(digest)
    storage.commit(temp, key)
    # From here on the blob stays even if our rows fail: an identical upload may have committed
    # the same key and be committing rows that name it right now. Checking for rows after our
    # rollback cannot see rows not yet committed, so deleting could leave that upload's version
    # pointing at nothing. An orphan is harmless: gc removes it once older than ORPHAN_GRACE.
    try:
        session.commit()
    except IntegrityError as error:
        # A concurrent upload won the race for this version: undo our half, keep theirs.
        session.rollback()
        raise Conflict(f"{name}:{version} for {os}/{arch} was just uploaded by someone else",
                       code="version-exists") from error
    except BaseException:
        session.rollback()
        raise
    return UploadResult(repository=name, version=version, os=os, arch=arch,
                        image_id=info.image_id, digest=digest, size=image.size,
                        signed_by=image.signature.key_fingerprint if image.signature else signer,
                        deduplicated=deduplicated, unchanged=unchanged)


def manifest_dict(image: Image) -> dict[str, object]:
    return json.loads(image.manifest)
