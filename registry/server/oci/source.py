"""The docker2aci converter's view of an image pushed to this registry: a `SourceImage`
whose documents and layers are read from the registry's own storage, digests verified."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.docker.aciwriter import ACIWriter
from registry.docker.blobs import load_json, read_limited
from registry.docker.errors import DockerError
from registry.docker.image import Layer, SourceImage, diff_ids, layer_descriptors
from registry.docker.manifest import appc_os_arch, squashed_manifest, validated_json
from registry.docker.reference import DockerReference
from registry.docker.squash import emit, plan
from registry.server.models import Repository
from registry.server.storage import BlobStorage

from .blobs import storage_key
from .manifests import INDEX_TYPES
from .models import OciManifest


def read_document(storage: BlobStorage, digest: str, what: str) -> dict[str, Any]:
    """A manifest, index or config (small JSON, size-limited), checked against its digest."""
    with storage.open(storage_key(digest)) as stream:
        return load_json(read_limited(stream, what), what, digest)


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
    offers no such platform. An index is followed to its entry for that platform."""
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
    domain, _, path = repository.name.partition("/")
    ref = DockerReference(registry=domain, repository=path, tag=version, digest=None,
                          original=f"{repository.name}:{version}")
    descriptors = layer_descriptors(document)
    ids = diff_ids(config, len(descriptors))
    layers = [Layer(_opener(storage, d["digest"]), d["digest"], diff_id, d["digest"])
              for d, diff_id in zip(descriptors, ids, strict=True)]
    return SourceImage(ref, config, str(document["config"]["digest"]), digest, layers)


def _opener(storage: BlobStorage, digest: str) -> Callable[[], BinaryIO]:
    return lambda: storage.open(storage_key(digest))


def write_squashed_aci(image: SourceImage, name: str, path: Path) -> None:
    """docker2aci's squashed conversion (registry.docker.convert.convert_squashed), named
    after the repository exactly: its sanitised name would turn `_` into `-`."""
    if not image.layers:
        raise DockerError("the image has no layers", reason="bad-manifest")
    squash_plan = plan(image.layers)
    manifest = squashed_manifest(image)
    manifest["name"] = name
    with ACIWriter(path, "gzip") as writer:
        writer.add_manifest(validated_json(manifest))
        emit(image.layers, squash_plan, writer)
        writer.commit()
