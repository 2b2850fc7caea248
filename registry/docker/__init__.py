"""docker2aci: converting Docker and OCI images (archives, layouts, registries) into ACIs.

    from registry.docker import ConvertOptions, convert
    [aci] = convert("docker://busybox", "out/", ConvertOptions(compression="gzip"))

A pure converter: it depends on `registry.aci` alone. Other parts use only the names exported
here: the client's `docker://` fetch (`registry.client.docker_fetch`: `pull_image`,
`convert_squashed`) and the registry's on-the-fly conversion of OCI tags (`image_from_blobs`,
`read_document`, `appc_os_arch`, `convert_squashed`).
"""

from registry.docker.convert import ConvertedImage, ConvertOptions, convert, convert_squashed
from registry.docker.distribution import pull_image
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

__all__ = ["ConvertOptions", "ConvertedImage", "DockerError", "DockerReference", "INDEX_TYPES",
           "MANIFEST_TYPES", "OCI_INDEX", "OCI_MANIFEST", "SourceImage", "appc_os_arch",
           "convert", "convert_squashed", "image_from_blobs", "output_filename",
           "parse_reference", "pull_image", "read_document"]
