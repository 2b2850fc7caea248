"""Every version of a repository in one list, however it arrived: appc uploads (UI, API,
`pyrkt push`), OCI pushes already converted, and OCI tags not converted yet.

The repository page and the JSON API both show this list, so an image pushed with skopeo or
docker appears at once, marked "not converted" until its first fetch (or the Convert button)
turns it into an ACI. An OCI tag's platforms come from its manifest: an index lists them,
an image manifest's config names its one. Manifests are content-addressed, so what a digest
offers never changes and is cached per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from registry.docker import DockerError, appc_os_arch
from registry.server.models import Repository, Tag, aware
from registry.server.storage import BlobStorage, StorageError

from .manifests import INDEX_TYPES
from .models import OciManifest, OciTag
from .offer import CONVERTING, FAILED, conversion_states
from .source import read_document

READY, NOT_CONVERTED = "ready", "not-converted"


@dataclass(frozen=True)
class VersionRow:
    """One version/os/arch of a repository as the page and the API show it."""

    version: str
    os: str
    arch: str
    # "appc" (uploaded as an ACI) or "oci" (pushed over /v2/; served as an ACI once converted)
    source: str
    # "ready" (an ACI is served), "not-converted", "converting" or "failed"
    state: str
    created: datetime
    tag: Tag | None = None
    # The OCI tag's manifest digest (docker pull / skopeo copy apply to these rows).
    oci_digest: str | None = None
    error: str = ""

    @property
    def oci_tagged(self) -> bool:
        return self.oci_digest is not None


def all_versions(session: Session, storage: BlobStorage, repository: Repository,
                 tags: list[Tag] | None = None) -> list[VersionRow]:
    """Newest first. `tags`: the repository's native tags when the caller has them loaded."""
    if tags is None:
        tags = list(session.scalars(
            select(Tag).where(Tag.repository_id == repository.id)
            .options(selectinload(Tag.image)).order_by(Tag.created_at.desc(), Tag.id.desc())))
    conversions = conversion_states(session, repository)
    oci_tags = session.scalars(select(OciTag).where(OciTag.repository_id == repository.id)
                               .options(selectinload(OciTag.manifest))).all()
    oci_by_name = {t.name: t for t in oci_tags}
    rows: list[VersionRow] = []
    native = set()
    for tag in tags:
        native.add((tag.version, tag.os, tag.arch))
        conversion = conversions.get((tag.version, tag.os, tag.arch))
        converted = conversion is not None and conversion.image_digest == tag.image.digest
        oci_tag = oci_by_name.get(tag.version)
        # A converted tag is as old as its push, not its conversion (which the first fetch
        # may make much later): the list stays in the order things were published.
        created = aware(oci_tag.updated_at) if converted and oci_tag else aware(tag.created_at)
        rows.append(VersionRow(tag.version, tag.os, tag.arch, "oci" if converted else "appc",
                               READY, created, tag=tag,
                               oci_digest=oci_tag.manifest.digest if oci_tag else None))
    for oci_tag in oci_tags:
        for os_name, arch in platforms(storage, oci_tag.manifest):
            if (oci_tag.name, os_name, arch) in native:
                continue
            conversion = conversions.get((oci_tag.name, os_name, arch))
            state, error = NOT_CONVERTED, ""
            # A conversion of an earlier push of the tag, or one whose version was deleted
            # since (DONE without a native row), leaves the tag not converted.
            if conversion is not None and conversion.manifest_digest == oci_tag.manifest.digest:
                state = {CONVERTING: CONVERTING, FAILED: FAILED}.get(conversion.state,
                                                                     NOT_CONVERTED)
                error = conversion.error if conversion.state == FAILED else ""
            rows.append(VersionRow(oci_tag.name, os_name, arch, "oci", state,
                                   aware(oci_tag.updated_at), oci_digest=oci_tag.manifest.digest,
                                   error=error))
    rows.sort(key=lambda r: r.created, reverse=True)
    return rows


def platforms(storage: BlobStorage, manifest: OciManifest
              ) -> tuple[tuple[str, str], ...]:
    """The appc (os, arch) pairs a manifest offers; () when its documents cannot be read
    (failures are not cached: storage may be back on the next look)."""
    try:
        return _platforms(storage, manifest.digest, manifest.media_type in INDEX_TYPES)
    except (DockerError, StorageError, OSError):
        return ()


@lru_cache(maxsize=4096)
def _platforms(storage: BlobStorage, digest: str, is_index: bool) -> tuple[tuple[str, str], ...]:
    document = read_document(storage, digest, "manifest")
    if is_index:
        entries = [e.get("platform") for e in document.get("manifests") or []
                   if isinstance(e, dict)]
    else:
        config_digest = str((document.get("config") or {}).get("digest"))
        entries = [read_document(storage, config_digest, "image config")]
    found: list[tuple[str, str]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        try:
            pair = appc_os_arch(str(entry.get("os")), str(entry.get("architecture")),
                                str(entry.get("variant") or ""))
        except DockerError:
            continue  # e.g. the "unknown/unknown" attestation entries of buildx
        if pair not in found:
            found.append(pair)
    return tuple(found)
