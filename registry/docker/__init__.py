"""docker2aci: converting Docker and OCI images (archives, layouts, registries) into ACIs.

    from registry.docker import ConvertOptions, convert
    [aci] = convert("docker://busybox", "out/", ConvertOptions(compression="gzip"))

`registry.docker.fetch.fetch_docker_image` puts a converted `docker://` image into the client's
image store (imported from there, not here, so this package does not load the client).
"""

from registry.docker.convert import ConvertedImage, ConvertOptions, convert
from registry.docker.errors import DockerError
from registry.docker.reference import DockerReference, parse_reference

__all__ = ["ConvertOptions", "ConvertedImage", "DockerError", "DockerReference", "convert",
           "parse_reference"]
