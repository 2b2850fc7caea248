"""Docker image references (`[REGISTRY/]NAME[:TAG|@DIGEST]`) and the appc names derived from them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from registry.docker.errors import DockerError

DOCKER_HUB = "docker.io"
# docker2aci recorded Docker Hub under the host that actually serves the v2 API.
DOCKER_HUB_INDEX = "registry-1.docker.io"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::[0-9]{1,5})?$")


@dataclass(frozen=True)
class DockerReference:
    """A parsed image reference; `registry` is the host[:port] actually contacted ("" for an
    image that came from a local file or layout without a registry in its name)."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None
    original: str

    @property
    def reference(self) -> str:
        """What to ask the registry's manifest endpoint for: the digest wins over the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def version(self) -> str:
        """The appc `version` label: the tag, `latest` when pulled by nothing more specific."""
        return self.tag or (DEFAULT_TAG if not self.digest else self.digest.replace(":", "-"))

    @property
    def host(self) -> str:
        """The host name without a port (for deciding whether plain HTTP is acceptable)."""
        if self.registry.startswith("["):
            return self.registry[1:].split("]", 1)[0]
        return self.registry.rsplit(":", 1)[0] if ":" in self.registry else self.registry


def parse_reference(text: str) -> DockerReference:
    """Parse `docker://[REGISTRY/]NAME[:TAG|@DIGEST]` (the scheme is optional) like Docker does."""
    original = text[len("docker://"):] if text.startswith("docker://") else text
    rest = original
    if not rest:
        raise DockerError("empty image reference", reason="bad-reference")
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise DockerError(f"{original!r}: bad digest {digest!r} (want sha256:<64 hex>)",
                              reason="bad-reference")
    tag = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise DockerError(f"{original!r}: bad tag {tag!r}", reason="bad-reference")
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, remainder
        if not _HOST.match(registry):
            raise DockerError(f"{original!r}: bad registry host {registry!r}", reason="bad-reference")
    else:
        registry, repository = DOCKER_HUB, rest
    if registry in (DOCKER_HUB, "index.docker.io", DOCKER_HUB_INDEX):
        registry = DOCKER_HUB_INDEX
        if "/" not in repository:
            repository = f"library/{repository}"
    if not _REPOSITORY.match(repository):
        raise DockerError(f"{original!r}: bad repository name {repository!r} "
                          "(lower-case letters, digits and separators)", reason="bad-reference")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return DockerReference(registry, repository, tag, digest, original)


def local_reference(text: str, fallback_name: str) -> DockerReference:
    """The reference of an image from a local archive or layout, named `text` (an OCI ref name:
    `NAME[:TAG]`, or only a TAG, which then names `fallback_name`).

    A name with a registry host (`example.com/team/app:1`, `localhost/app`) is taken as is;
    anything else gets no registry: as docker2aci did for files, the appc name is just the
    name, not a Docker Hub one invented for it.
    """
    rest = text.split("@", 1)[0]
    name, tag = rest, None
    colon, last_slash = rest.rfind(":"), rest.rfind("/")
    if colon > last_slash:
        name, tag = rest[:colon], rest[colon + 1:]
    elif "/" not in rest:
        name, tag = "", rest or None  # a bare ref name is a tag (OCI's usual `v1`)
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return parse_reference(text)
    if tag is not None and not _TAG.match(tag):
        raise DockerError(f"{text!r}: bad tag {tag!r}", reason="bad-reference")
    repository = sanitize_identifier(name or fallback_name).replace("~", "-")
    original = text if name else f"{repository}:{tag}" if tag else repository
    return DockerReference("", repository, tag or DEFAULT_TAG, None, original)


def sanitize_identifier(text: str) -> str:
    """Turn any string into an AC Identifier (`^[a-z0-9]+([-._~/][a-z0-9]+)*$`).

    Characters outside the alphabet become `-`; runs of separators collapse to their first one
    so `foo__bar` or `host:5000` stay readable (`foo_bar` is invalid in appc, `foo-bar` is not).
    """
    lowered = re.sub(r"[^a-z0-9._~/-]", "-", text.lower())
    collapsed = re.sub(r"([-._~/])[-._~/]+", r"\1", lowered.replace("_", "-"))
    result = collapsed.strip("-._~/")
    if not result:
        raise DockerError(f"{text!r} has no character usable in an appc name", reason="bad-reference")
    return result


_GO_INVALID = re.compile(r"[^a-z0-9._~/-]")
_GO_EDGES = re.compile(r"(^[-._~/]+)|([-._~/]+$)")
_AC_IDENTIFIER = re.compile(r"[a-z0-9]+(?:[-._~/][a-z0-9]+)*")


def reference_identifier(text: str) -> str:
    """What docker2aci v0.17.2 names an image (appc's Go SanitizeACIdentifier: lower case, `_`
    for any other character, separators trimmed at the ends), e.g. `127.0.0.1:5000/team/app`
    -> `127.0.0.1_5000/team/app`.

    pyrkt's AC Identifier rule is stricter than Go's (no doubled separators: `a//b` or `a/../b`
    would become paths); a name that breaks it falls back to `sanitize_identifier`.
    """
    result = _GO_EDGES.sub("", _GO_INVALID.sub("_", text.lower()))
    return result if _AC_IDENTIFIER.fullmatch(result) else sanitize_identifier(text)


def sanitize_name(text: str) -> str:
    """Turn a string into an AC Name (`^[a-z0-9]+(-[a-z0-9]+)*$`), e.g. `80/tcp` -> `80-tcp`."""
    result = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", text.lower())).strip("-")
    if not result:
        raise DockerError(f"{text!r} has no character usable in an appc name", reason="bad-manifest")
    return result


def appc_name(ref: DockerReference) -> str:
    """The squashed image's name, as docker2aci made it: `REGISTRY/REPOSITORY` as Go sanitizes
    it (`registry-1.docker.io/library/busybox`, `127.0.0.1_5000/team/app`); only `REPOSITORY`
    for an image without a registry (a `docker save` archive converted without --image)."""
    return reference_identifier(f"{ref.registry}/{ref.repository}" if ref.registry
                                else ref.repository)


def layer_identifier(ref: DockerReference, layer_id: str) -> str:
    """A --nosquash layer's name, as docker2aci wrote it: `REGISTRY/REPOSITORY-LAYERID`."""
    base = f"{ref.registry}/{ref.repository}" if ref.registry else ref.repository
    return reference_identifier(f"{base}-{layer_id}")


def output_filename(ref: DockerReference) -> str:
    """docker2aci's file name: `library-busybox-latest.aci`. Pulled by digest, docker2aci wrote
    `library-busybox.aci`; pyrkt adds the digest so two digests never overwrite each other."""
    base = ref.repository.replace("/", "-")
    suffix = ref.tag if ref.tag else (ref.digest or DEFAULT_TAG).replace(":", "-")
    return f"{base}-{suffix}.aci"
