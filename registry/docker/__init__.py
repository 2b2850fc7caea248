"""docker2aci: converting Docker and OCI images (archives, layouts, registries) into ACIs.

    from registry.docker import ConvertOptions, convert
    [aci] = convert("docker://busybox", "out/", ConvertOptions(compression="gzip"))

A pure converter: it depends on `registry.aci` alone. Other parts use only the names exported
here: the client's `docker://` fetch (`registry.client.docker_fetch`: `pull_image`,
`convert_squashed`) and the registry's on-the-fly conversion of OCI tags (`image_from_blobs`,
`read_document`, `appc_os_arch`, `convert_squashed`).
"""

from typing import TYPE_CHECKING

from registry.docker.convert import ConvertedImage, ConvertOptions, convert, convert_squashed
from registry.docker.errors import DockerError
from registry.docker.image import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    SourceImage,
)
from registry.docker.manifest import appc_os_arch
from registry.docker.reference import DockerReference, output_filename, parse_reference
from registry.docker.stored import image_from_blobs, read_document

# Function-local imports keep start-up fast: registries are reached through requests (~0.1 s of
# imports), which converting a local archive or layout, or a registry's own blobs, never needs.
if TYPE_CHECKING:
    from registry.docker.distribution import pull_image


def __getattr__(name: str) -> object:
    if name == "pull_image":
        from registry.docker.distribution import pull_image

        return pull_image
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ConvertOptions", "ConvertedImage", "DockerError", "DockerReference", "INDEX_TYPES",
           "MANIFEST_TYPES", "OCI_INDEX", "OCI_MANIFEST", "SourceImage", "appc_os_arch",
           "convert", "convert_squashed", "image_from_blobs", "output_filename",
           "parse_reference", "pull_image", "read_document"]
