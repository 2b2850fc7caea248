"""Images whose blobs are already at hand (e.g. the registry's own storage, for /v2/ pushes).

The server converts a pushed image without a network pull: it gives the manifest bytes and a
function opening any blob by digest, gets a SourceImage, and hands it to `convert_squashed`.
This module and `registry.docker`'s exports are the whole contract the server uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO

from registry.docker.blobs import digest_of, load_json, read_limited
from registry.docker.errors import DockerError
from registry.docker.image import (
    INDEX_TYPES,
    Layer,
    SourceImage,
    diff_ids,
    layer_descriptors,
    select_platform,
)
from registry.docker.reference import DockerReference

MAX_INDEX_DEPTH = 8
BlobOpener = Callable[[str], BinaryIO]


def read_document(open_blob: BlobOpener, digest: str, what: str) -> dict[str, Any]:
    """A manifest, index or config blob (small JSON, size-limited), checked against `digest`."""
    with open_blob(digest) as stream:
        return load_json(read_limited(stream, what), what, digest)


def image_from_blobs(ref: DockerReference, manifest: bytes, open_blob: BlobOpener, *,
                     platform: tuple[str, str, str] | None = None) -> SourceImage:
    """A SourceImage from a manifest (or index) and a blob opener; every blob is digest-checked.

    `platform` (os, architecture, variant) picks from an index; the host's by default.
    """
    manifest_digest = digest_of(manifest)
    document = load_json(manifest, f"manifest {manifest_digest}")
    for _ in range(MAX_INDEX_DEPTH):
        if document.get("mediaType") not in INDEX_TYPES and "manifests" not in document:
            break
        manifest_digest = str(select_platform(document, platform).get("digest"))
        document = read_document(open_blob, manifest_digest, f"manifest {manifest_digest}")
    else:
        raise DockerError("image index nesting too deep", reason="bad-manifest")
    descriptors = layer_descriptors(document)
    config_digest = str(document["config"].get("digest"))
    config = read_document(open_blob, config_digest, f"image config {config_digest}")
    layers = [Layer(_opener(open_blob, d["digest"]), d["digest"], diff_id, d["digest"])
              for d, diff_id in zip(descriptors, diff_ids(config, len(descriptors)), strict=True)]
    return SourceImage(ref, config, config_digest, manifest_digest, layers)


def _opener(open_blob: BlobOpener, digest: str) -> Callable[[], BinaryIO]:
    return lambda: open_blob(digest)
