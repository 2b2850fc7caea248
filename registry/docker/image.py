"""The shape every source (archive, layout, registry) is read into before conversion."""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from registry.docker.blobs import parse_digest
from registry.docker.errors import DockerError
from registry.docker.layers import Entry, Sink, walk_layer
from registry.docker.reference import DockerReference

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)


@dataclass(frozen=True)
class Layer:
    """One filesystem layer; `opener` reopens its raw blob from the start (we read it twice)."""

    opener: Callable[[], BinaryIO]
    digest: str | None
    diff_id: str | None
    description: str

    @property
    def short(self) -> str:
        known = self.digest or self.diff_id
        return parse_digest(known)[1] if known else self.description

    def walk(self, visit: Callable[[Entry], Sink | None], *, again: bool = False,
             after: Callable[[Entry], None] | None = None) -> None:
        """Read the layer once, handing each entry to `visit` (see layers.walk_layer); the
        digests are verified at the end.

        `again`: a second read of a layer already verified. One digest still guards against the
        file changing in between; the uncompressed one is skipped when the blob digest is known
        (it pins the same bytes), which saves a hash pass over the whole layer.
        """
        diff_id = None if again and self.digest else self.diff_id
        walk_layer(self.opener, visit, digest=self.digest, diff_id=diff_id,
                   what=f"layer {self.description}", after=after)


@dataclass
class SourceImage:
    """A Docker/OCI image ready to convert: its name, config and layers (bottom first)."""

    ref: DockerReference
    config: dict[str, Any]
    config_digest: str | None
    manifest_digest: str | None
    layers: list[Layer] = field(default_factory=list)
    # True only when the manifest came by digest over TLS whose certificate was verified: then
    # the content is pinned end to end even without an appc signature.
    pinned_over_tls: bool = False
    # Which of docker2aci v0.17.2's two manifest mappings applies (lib/internal/internal.go):
    # "docker-save" archives went through its v1 path (GenerateManifest), registries and OCI
    # images through the v2.2 path (GenerateManifestV22). They name annotations differently.
    kind: str = "v22"
    # A docker-save archive's legacy v1 layer IDs (bottom first), from `repositories` and each
    # layer's `json`: the IDs docker2aci wrote into names and annotations. None when absent.
    legacy_ids: list[str] | None = None

    @property
    def top_layer_id(self) -> str:
        """docker2aci's `imageid`: the top v1 layer ID (archives), else the top layer digest."""
        if self.legacy_ids:
            return self.legacy_ids[-1]
        top = self.layers[-1] if self.layers else None
        return (top.digest or top.diff_id or "") if top else ""


def diff_ids(config: dict[str, Any], layer_count: int) -> list[str | None]:
    """The uncompressed layer digests the config promises, one per layer."""
    rootfs = config.get("rootfs") or {}
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list) or not ids:
        return [None] * layer_count
    if len(ids) != layer_count:
        raise DockerError(f"image config lists {len(ids)} layers, the manifest {layer_count}",
                          reason="bad-manifest")
    for value in ids:
        parse_digest(value)
    return list(ids)


def layer_descriptors(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's layer descriptors, each checked for a digest."""
    if manifest.get("schemaVersion") == 1:
        raise DockerError("Docker schema 1 manifests are not supported (push the image again "
                          "with a current client)", reason="unsupported")
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not isinstance(manifest.get("config"), dict):
        raise DockerError("image manifest has no config or layers", reason="bad-manifest")
    for descriptor in layers:
        if not isinstance(descriptor, dict) or not isinstance(descriptor.get("digest"), str):
            raise DockerError("image manifest has a layer without a digest", reason="bad-manifest")
        parse_digest(descriptor["digest"])
        media_type = str(descriptor.get("mediaType", ""))
        if "foreign" in media_type or "nondistributable" in media_type:
            raise DockerError(f"layer {descriptor['digest']} is non-distributable ({media_type})",
                              reason="unsupported")
    return layers


_MACHINE_TO_GO = {
    "x86_64": ("amd64", ""), "amd64": ("amd64", ""), "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""), "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
    "i386": ("386", ""), "i686": ("386", ""), "ppc64le": ("ppc64le", ""),
    "ppc64": ("ppc64", ""), "s390x": ("s390x", ""),
}


def host_platform() -> tuple[str, str, str]:
    """The host as Docker names it: (os, architecture, variant)."""
    arch, variant = _MACHINE_TO_GO.get(platform.machine().lower(), (platform.machine(), ""))
    return platform.system().lower(), arch, variant


def select_platform(index: dict[str, Any], wanted: tuple[str, str, str] | None = None
                    ) -> dict[str, Any]:
    """Pick the manifest descriptor of an index / manifest list matching the host platform."""
    os_name, arch, variant = wanted or host_platform()
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise DockerError("image index has no manifests list", reason="bad-manifest")
    candidates = []
    offered = []
    for descriptor in manifests:
        plat = descriptor.get("platform") if isinstance(descriptor, dict) else None
        if not isinstance(plat, dict):
            continue
        offered.append("/".join(filter(None, (plat.get("os"), plat.get("architecture"),
                                                plat.get("variant")))))
        if plat.get("os") == os_name and plat.get("architecture") == arch:
            candidates.append(descriptor)
    exact = [d for d in candidates if not variant or d["platform"].get("variant") in (variant, None)]
    if exact or candidates:
        return (exact or candidates)[0]
    raise DockerError(f"no image for {os_name}/{arch}{'/' + variant if variant else ''} in the "
                      f"index (offered: {', '.join(offered) or 'none'})", reason="no-platform")
