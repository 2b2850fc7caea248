"""The docker2aci converter's view of an image pushed to this registry: a `SourceImage`
whose documents and layers are read from the registry's own storage, digests verified.

Only `registry.docker`'s public API is used: the converter owns squashing and the ACI it
writes; this module owns the database lookups (which manifests belong to the repository)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.docker import (
    DockerError,
    DockerReference,
    SourceImage,
    appc_os_arch,
    convert_squashed,
    image_from_blobs,
)
from registry.docker import read_document as read_blob_document
from registry.server.models import Repository
from registry.server.storage import BlobStorage

from .blobs import storage_key
from .manifests import INDEX_TYPES
from .models import OciManifest


def _blob_opener(storage: BlobStorage) -> Any:
    def open_blob(digest: str) -> BinaryIO:
        return storage.open(storage_key(digest))
    return open_blob


def read_document(storage: BlobStorage, digest: str, what: str) -> dict[str, Any]:
    """A manifest, index or config (small JSON, size-limited), checked against its digest."""
    return read_blob_document(_blob_opener(storage), digest, what)


def _matches(platform: Any, os_name: str, arch: str) -> bool:
    if not isinstance(platform, dict):
        return False
    try:
        return appc_os_arch(str(platform.get("os")), str(platform.get("architecture")),
                            str(platform.get("variant") or "")) == (os_name, arch)
    except DockerError:
        return False


def platform_manifest(session: Session, storage: BlobStorage, repository: Repository,
                      manifest: OciManifest, os_name: str, arch: str
                      ) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """(digest, image manifest, config) of the image for appc's os/arch, or None if the tag
    offers no such platform. An index is followed to its entry for that platform, which must
    be a manifest of the same repository."""
    digest, document = manifest.digest, read_document(storage, manifest.digest, "manifest")
    if manifest.media_type in INDEX_TYPES:
        entries = document.get("manifests")
        chosen = next((e for e in entries or [] if isinstance(e, dict)
                       and _matches(e.get("platform"), os_name, arch)), None)
        if chosen is None:
            return None
        child = session.scalar(select(OciManifest).where(
            OciManifest.repository_id == repository.id, OciManifest.digest == chosen.get("digest")))
        if child is None or child.media_type in INDEX_TYPES:
            return None
        digest, document = child.digest, read_document(storage, child.digest, "manifest")
    config_digest = str((document.get("config") or {}).get("digest"))
    config = read_document(storage, config_digest, f"image config {config_digest}")
    if not _matches(config, os_name, arch):
        return None
    return digest, document, config


def source_image(storage: BlobStorage, repository: Repository, version: str, digest: str,
                 document: dict[str, Any], config: dict[str, Any]) -> SourceImage:
    """The converter's SourceImage of the image manifest `digest` (chosen by
    platform_manifest); the converter re-reads and digest-checks the small documents."""
    domain, _, path = repository.name.partition("/")
    ref = DockerReference(registry=domain, repository=path, tag=version, digest=None,
                          original=f"{repository.name}:{version}")
    with storage.open(storage_key(digest)) as stream:
        manifest_bytes = stream.read()
    return image_from_blobs(ref, manifest_bytes, _blob_opener(storage))


def write_squashed_aci(image: SourceImage, name: str, path: Path) -> None:
    """docker2aci's squashed conversion, named after the repository exactly."""
    convert_squashed(image, path, "gzip", name=name)
