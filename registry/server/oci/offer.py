"""The appc offer of OCI-pushed images: converted to an ACI on first request, then native.

The hook runs before the server's own ACI view (`files.aci_file`, URL
`/_aci/NAME/VERSION/OS/ARCH/image.aci[.asc]`) and only acts when that view would answer 404:
the repository is readable, has no appc version for VERSION/OS/ARCH, but has an OCI tag
VERSION offering OS/ARCH. Then one worker (a row in `oci_conversions` is the lock, shared by
every worker and host) converts with docker2aci reading the blobs from storage, and publishes
the ACI through the upload service, which signs it with the registry's key, stores it and
indexes it as that version of the repository. From then on the unchanged server view serves
it from storage like any pushed ACI.

While a conversion runs the signature answers 202 with Retry-After (as Quay did; rkt asks
again); the image itself waits for it (up to WAIT_SECONDS). A failed conversion answers 422
with the reason until the tag is pushed again. `latest` is appc's moving name and never an
OCI tag here (the upload service refuses it as a version): it resolves among converted and
native versions as usual.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from flask import Flask, Response, current_app, jsonify, request
from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.discovery import EXTENSIONS
from registry.docker import DockerError
from registry.server.auth import reader_actor
from registry.server.context import db
from registry.server.models import Repository, aware, utcnow
from registry.server.services import audit
from registry.server.services.actor import Actor
from registry.server.services.errors import NotFound, ServiceError
from registry.server.services.names import VERSION_RE
from registry.server.services.repositories import LATEST, resolve_tag, visible_or_none
from registry.server.services.upload import UploadLimits, upload_image
from registry.server.state import EXTENSION, RegistryState
from registry.server.storage import StorageError

from .models import OciConversion, OciManifest, OciTag
from .source import platform_manifest, source_image, write_squashed_aci

log = logging.getLogger(__name__)

ACI_ENDPOINT = "files.aci_file"
CONVERTING, DONE, FAILED = "converting", "done", "failed"
# A conversion not finished after this long is presumed dead (its worker was killed).
STALE_AFTER = timedelta(minutes=15)
WAIT_SECONDS = 120.0
RETRY_AFTER = "2"


def install(app: Flask) -> None:
    app.before_request(_offer_converted)


def _offer_converted() -> Response | tuple[Response, int] | None:
    if request.endpoint != ACI_ENDPOINT or not request.view_args:
        return None
    args = request.view_args
    name, version, os_name, arch, ext = (str(args.get(k)) for k in
                                         ("name", "version", "os", "arch", "ext"))
    if ext not in EXTENSIONS or version == LATEST or not VERSION_RE.match(version):
        return None
    session = db()
    # One indexed query first, so native downloads (the hot path) pay nothing more.
    offered = session.scalar(
        select(OciTag.id).join(Repository, Repository.id == OciTag.repository_id)
        .where(Repository.name == name, OciTag.name == version).limit(1))
    if offered is None:
        return None
    reader = reader_actor()
    repository = visible_or_none(session, reader, name)
    if repository is None or resolve_tag(session, repository, version, os_name, arch):
        return None
    state: RegistryState = current_app.extensions[EXTENSION]
    found = _offered(session, state, repository, version, os_name, arch)
    if found is None:
        return None  # no such tag, or no image for this platform: the view's 404
    what = " (its signature)" if ext == "aci.asc" else ""
    cause = f"first fetch of {name}:{version}{what} by {reader.name or 'an anonymous client'}"
    conversion, mine = _claim(session, repository, version, os_name, arch, found.digest)
    if conversion.state == FAILED and not mine:
        return _failed(conversion)
    job = _Job(state, repository.id, repository.name, version, os_name, arch, found.id,
               conversion.id, Actor.automatic(cause, request.remote_addr))
    if ext == "aci.asc":
        if mine:
            job.start()
        return _accepted()
    if mine:
        job.run()
    elif not _wait(session, conversion.id):
        return _accepted()
    session.expire_all()
    finished = session.get(OciConversion, conversion.id)
    if finished is None or finished.state != DONE:
        return _failed(finished) if finished is not None else _accepted()
    return None  # the files view now finds the version and serves it


def _offered(session: Session, state: RegistryState, repository: Repository, version: str,
             os_name: str, arch: str) -> OciManifest | None:
    """The manifest the OCI tag `version` names if it offers os/arch (unreadable documents
    count as offered: the conversion then records why it failed)."""
    manifest = session.scalar(select(OciManifest).join(OciTag, OciTag.manifest_id == OciManifest.id)
                              .where(OciTag.repository_id == repository.id, OciTag.name == version))
    if manifest is None:
        return None
    try:
        if platform_manifest(session, state.storage, repository, manifest, os_name, arch) is None:
            return None
    except (DockerError, StorageError):
        pass
    return manifest


def convert_tag(session: Session, actor: Actor, repository: Repository, version: str,
                os_name: str, arch: str) -> str:
    """Convert an OCI tag's image for os/arch now, in the background (the UI's button and the
    API's `.../-/versions/VERSION/convert`); the caller has checked the actor may read the
    repository. Returns the state: "converting", "done" (already a version) or "failed"
    (an earlier attempt failed for this very push)."""
    if resolve_tag(session, repository, version, os_name, arch) is not None:
        return DONE
    state: RegistryState = current_app.extensions[EXTENSION]
    found = _offered(session, state, repository, version, os_name, arch)
    if found is None:
        raise NotFound(f"{repository.name} has no OCI tag {version!r} for {os_name}/{arch}",
                       code="version-not-found")
    conversion, mine = _claim(session, repository, version, os_name, arch, found.digest)
    if mine:
        cause = (f"convert request for {repository.name}:{version} by "
                 f"{actor.name or 'an anonymous client'}")
        _Job(state, repository.id, repository.name, version, os_name, arch, found.id,
             conversion.id, Actor.automatic(cause, actor.remote_addr)).start()
        return CONVERTING
    return conversion.state


def conversion_states(session: Session, repository: Repository
                      ) -> dict[tuple[str, str, str], OciConversion]:
    """(version, os, arch) -> the conversion row, for the repository page."""
    rows = session.scalars(select(OciConversion)
                           .where(OciConversion.repository_id == repository.id)).all()
    return {(row.version, row.os, row.arch): row for row in rows}


def _accepted() -> tuple[Response, int]:
    response = jsonify({"status": "converting", "message": "this image is being converted from "
                        "its OCI form; ask again shortly"})
    response.headers["Retry-After"] = RETRY_AFTER
    return response, 202


def _failed(conversion: OciConversion) -> tuple[Response, int]:
    return jsonify({"error": {"code": "conversion-failed",
                              "message": f"the OCI image could not be offered as an ACI: "
                                         f"{conversion.error}"}}), 422


def _claim(session: Session, repository: Repository, version: str, os_name: str, arch: str,
           manifest_digest: str) -> tuple[OciConversion, bool]:
    """The conversion row and whether this request won the right to run it."""
    row = OciConversion(repository_id=repository.id, version=version, os=os_name, arch=arch,
                        manifest_digest=manifest_digest, state=CONVERTING, error="")
    session.add(row)
    try:
        session.commit()
        return row, True
    except IntegrityError:
        session.rollback()
    row = session.scalars(select(OciConversion).where(
        OciConversion.repository_id == repository.id, OciConversion.version == version,
        OciConversion.os == os_name, OciConversion.arch == arch)).one()
    stale = row.state == CONVERTING and aware(row.updated_at) < utcnow() - STALE_AFTER
    # DONE and still no version: it was deleted since (the OCI tag still offers it), so
    # convert again; with a version, another request just finished it.
    gone = row.state == DONE and resolve_tag(session, repository, version, os_name, arch) is None
    reclaim = stale or gone or row.manifest_digest != manifest_digest
    if not reclaim:
        return row, False
    # An UPDATE answers a CursorResult (rowcount); Session.execute is typed as Result.
    taken = cast(CursorResult[Any], session.execute(
        update(OciConversion)
        .where(OciConversion.id == row.id, OciConversion.state == row.state,
               OciConversion.updated_at == row.updated_at)
        .values(state=CONVERTING, error="", manifest_digest=manifest_digest, updated_at=utcnow())
    )).rowcount
    session.commit()
    session.refresh(row)
    return row, taken == 1


def _wait(session: Session, conversion_id: int) -> bool:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        session.expire_all()
        row = session.get(OciConversion, conversion_id)
        if row is None or row.state != CONVERTING:
            return True
        session.rollback()  # end the read transaction so SQLite sees the converter's commit
        time.sleep(0.25)
    return False



class _Job:
    """One conversion; runs in the request or in a background thread with its own session."""

    def __init__(self, state: RegistryState, repository_id: int, name: str, version: str,
                 os_name: str, arch: str, manifest_id: int, conversion_id: int,
                 actor: Actor) -> None:
        self.state = state
        # The registry itself publishes the ACI; the audit log names what triggered it.
        self.actor = actor
        self.repository_id = repository_id
        self.name = name
        self.version = version
        self.os = os_name
        self.arch = arch
        self.manifest_id = manifest_id
        self.conversion_id = conversion_id

    def start(self) -> None:
        threading.Thread(target=self.run, name=f"oci-convert-{self.conversion_id}",
                         daemon=True).start()

    def run(self) -> None:
        session = self.state.sessions()
        try:
            digest = self._convert_and_publish(session)
            self._finish(session, DONE, "", digest)
        except (DockerError, ServiceError, StorageError, OSError) as error:
            log.warning("converting %s:%s for %s/%s failed: %s", self.name, self.version,
                        self.os, self.arch, error)
            self._finish(session, FAILED, getattr(error, "message", None) or str(error), None)
        except BaseException as error:
            log.exception("converting %s:%s crashed", self.name, self.version)
            self._finish(session, FAILED, f"internal error: {error.__class__.__name__}", None)
        finally:
            session.close()

    def _convert_and_publish(self, session: Session) -> str:
        storage, config = self.state.storage, self.state.config
        repository = session.get(Repository, self.repository_id)
        manifest = session.get(OciManifest, self.manifest_id)
        if repository is None or manifest is None:
            raise DockerError("the repository or tag went away during conversion",
                              reason="not-found")
        found = platform_manifest(session, storage, repository, manifest, self.os, self.arch)
        if found is None:
            raise DockerError(f"the tag offers no image for {self.os}/{self.arch}",
                              reason="no-platform")
        image = source_image(storage, repository, self.version, *found)
        config.tmp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=config.tmp_dir, prefix="oci-convert-") as work:
            aci = Path(work) / "image.aci"
            write_squashed_aci(image, repository.name, aci)
            with aci.open("rb") as body:
                result = upload_image(
                    session, storage, self.actor, repository.name, body,
                    domains=config.domains, version=self.version, public=repository.is_public,
                    limits=UploadLimits(max_upload=config.max_upload,
                                        max_uncompressed=config.max_uncompressed))
        return result.digest

    def _finish(self, session: Session, state: str, error: str, digest: str | None) -> None:
        session.rollback()
        session.execute(update(OciConversion).where(OciConversion.id == self.conversion_id)
                        .values(state=state, error=error[:2000], image_digest=digest,
                                updated_at=utcnow()))
        audit.record(session, Actor.operator(), "oci.conversion",
                     f"{self.name}:{self.version}", os=self.os, arch=self.arch, state=state,
                     digest=digest, error=error[:500] or None, trigger="first request")
        session.commit()
