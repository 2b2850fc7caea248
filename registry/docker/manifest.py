"""The docker2aci manifest mapping: a Docker/OCI image config becomes an appc ImageManifest."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from registry.aci import APPC_VERSION, MAX_MANIFEST_SIZE, ImageManifest, ManifestError
from registry.docker.errors import DockerError
from registry.docker.image import SourceImage
from registry.docker.reference import appc_name, layer_identifier, sanitize_name

AC_VERSION = APPC_VERSION
# The annotation names docker2aci wrote, so tools that read them (rkt, kubelet) keep working.
ANNOTATION_ORIGINAL_NAME = "appc.io/docker/originalname"
ANNOTATION_REGISTRY = "appc.io/docker/registryurl"
ANNOTATION_REPOSITORY = "appc.io/docker/repository"
ANNOTATION_TAG = "appc.io/docker/tag"
ANNOTATION_IMAGE_ID = "appc.io/docker/imageid"
ANNOTATION_PARENT_IMAGE_ID = "appc.io/docker/parentimageid"
ANNOTATION_MANIFEST_HASH = "appc.io/docker/manifesthash"
ANNOTATION_ENTRYPOINT = "appc.io/docker/entrypoint"
ANNOTATION_CMD = "appc.io/docker/cmd"
ANNOTATION_LAYER = "appc.io/docker/layer"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$")

# appc's own table (schema/types/labels.go ToAppcOSArch): (os, arch, variant) -> (os, arch).
_OS_ARCH = {
    ("linux", "amd64", ""): ("linux", "amd64"),
    ("linux", "386", ""): ("linux", "i386"),
    ("linux", "arm64", ""): ("linux", "aarch64"),
    ("linux", "arm", ""): ("linux", "armv6l"),
    ("linux", "arm", "6"): ("linux", "armv6l"),
    ("linux", "arm", "7"): ("linux", "armv7l"),
    ("linux", "ppc64", ""): ("linux", "ppc64"),
    ("linux", "ppc64le", ""): ("linux", "ppc64le"),
    ("linux", "s390x", ""): ("linux", "s390x"),
    ("freebsd", "amd64", ""): ("freebsd", "amd64"),
    ("freebsd", "386", ""): ("freebsd", "i386"),
    ("freebsd", "arm", ""): ("freebsd", "arm"),
    ("freebsd", "arm", "5"): ("freebsd", "arm"),
    ("freebsd", "arm", "6"): ("freebsd", "arm"),
    ("freebsd", "arm", "7"): ("freebsd", "arm"),
    ("darwin", "amd64", ""): ("darwin", "x86_64"),
    ("darwin", "386", ""): ("darwin", "i386"),
}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z_0-9.-]*$")
_PORT = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?(?:/([a-z]+))?$")


def appc_os_arch(os_name: str, arch: str, variant: str = "") -> tuple[str, str]:
    """Docker's platform names in appc's vocabulary (`arm64` -> `aarch64`, arm v7 -> `armv7l`)."""
    flavor = variant.lower().lstrip("v")
    if arch == "arm64":
        flavor = ""  # arm64's only variant (v8) has no separate appc name
    try:
        return _OS_ARCH[(os_name, arch, flavor)]
    except KeyError:
        raise DockerError(f"no appc name for platform {os_name}/{arch}"
                          f"{'/' + variant if variant else ''}", reason="unsupported") from None


def _labels(image: SourceImage, extra: dict[str, str] | None = None) -> list[dict[str, str]]:
    labels: dict[str, str] = dict(extra or {})
    labels["version"] = image.ref.version
    os_name, arch = image.config.get("os"), image.config.get("architecture")
    if os_name and arch:
        labels["os"], labels["arch"] = appc_os_arch(str(os_name), str(arch),
                                                    str(image.config.get("variant") or ""))
    return [{"name": k, "value": v} for k, v in labels.items()]


def parse_user(docker_user: str) -> tuple[str, str]:
    """`USER` as docker2aci read it: empty means root; a user without a group gets group 0."""
    if not docker_user:
        return "0", "0"
    user, _, group = docker_user.partition(":")
    return user or "0", group or "0"


def _environment(env: list[Any]) -> list[dict[str, str]]:
    values: dict[str, str] = {}
    for item in env:
        name, sep, value = str(item).partition("=")
        if not sep:
            continue
        if not _ENV_NAME.match(name):
            raise DockerError(f"environment variable name {name!r} is not valid in appc",
                              reason="bad-manifest")
        values[name] = value
    return [{"name": k, "value": v} for k, v in values.items()]


def _ports(exposed: dict[str, Any]) -> list[dict[str, Any]]:
    ports = []
    for spec in exposed:
        match = _PORT.match(str(spec))
        if not match:
            raise DockerError(f"exposed port {spec!r} is not PORT[-END][/PROTOCOL]",
                              reason="bad-manifest")
        first, last, protocol = int(match[1]), int(match[2] or match[1]), match[3] or "tcp"
        if not 1 <= first <= last <= 65535:
            raise DockerError(f"exposed port {spec!r} is out of range", reason="bad-manifest")
        ports.append({"name": sanitize_name(f"{match[1]}{'-' + match[2] if match[2] else ''}"
                                            f"/{protocol}"),
                      "protocol": protocol, "port": first, "count": last - first + 1,
                      "socketActivated": False})
    return sorted(ports, key=lambda p: (p["port"], p["protocol"]))


def _mount_points(volumes: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": sanitize_name(f"volume/{path}"), "path": path, "readOnly": False}
            for path in sorted(volumes)]


def build_app(config: dict[str, Any]) -> dict[str, Any] | None:
    """The `app` section from the image's runtime config (Entrypoint + Cmd, user, env...)."""
    runtime = config.get("config") or config.get("container_config")
    if not isinstance(runtime, dict):
        return None
    user, group = parse_user(str(runtime.get("User") or ""))
    app: dict[str, Any] = {}
    command = list(runtime.get("Entrypoint") or []) + list(runtime.get("Cmd") or [])
    if command:
        app["exec"] = [str(part) for part in command]
    app["user"], app["group"] = user, group
    if runtime.get("WorkingDir"):
        app["workingDirectory"] = str(runtime["WorkingDir"])
    environment = _environment(runtime.get("Env") or [])
    if environment:
        app["environment"] = environment
    mount_points = _mount_points(runtime.get("Volumes") or {})
    if mount_points:
        app["mountPoints"] = mount_points
    ports = _ports(runtime.get("ExposedPorts") or {})
    if ports:
        app["ports"] = ports
    # Docker's image labels go where docker2aci put them: the app's userLabels (v0.17.2 does
    # so for docker-save archives; its v2.2 path dropped them, which loses information).
    labels = {str(k): str(v) for k, v in (runtime.get("Labels") or {}).items()}
    if labels:
        app["userLabels"] = dict(sorted(labels.items()))
    return app


def _created(value: Any) -> str | None:
    """Docker's nanosecond timestamps as RFC 3339 seconds (docker2aci's format); none for epoch."""
    if not isinstance(value, str) or not value:
        return None
    text = re.sub(r"(\.\d+)", "", value.strip()).replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment.timestamp() == 0:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _reference_created(value: Any) -> str | None:
    """The v2.2 path copies the config's `created` string as it is (it is RFC 3339)."""
    if isinstance(value, str) and _RFC3339.match(value.strip()):
        return value.strip()
    return _created(value)


def _annotations(image: SourceImage) -> list[dict[str, str]]:
    """docker2aci v0.17.2's annotations, with its values (lib/internal/internal.go)."""
    config, ref = image.config, image.ref
    found = config.get("config")
    runtime: dict[str, Any] = found if isinstance(found, dict) else {}
    notes: dict[str, str] = {}
    archive = image.kind == "docker-save"

    def add(name: str, value: Any) -> None:
        if value not in (None, "", [], {}):
            notes[name] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))

    if archive:  # GenerateManifest (v1 layers)
        add("authors", config.get("author"))
        add("created", _created(config.get("created")))
        add("docker-comment", config.get("comment"))
    else:  # GenerateManifestV22
        add("author", config.get("author"))
        add("created", _reference_created(config.get("created")))
    add(ANNOTATION_ORIGINAL_NAME, ref.original)
    add(ANNOTATION_REGISTRY, ref.registry)
    add(ANNOTATION_REPOSITORY, ref.repository)
    add(ANNOTATION_IMAGE_ID, image.top_layer_id)
    if archive:
        ids = image.legacy_ids or []
        add(ANNOTATION_PARENT_IMAGE_ID, ids[-2] if len(ids) > 1 else None)
        # The file backend's "manifest hash" is the image's top v1 layer ID.
        add(ANNOTATION_MANIFEST_HASH, image.top_layer_id)
    else:
        add(ANNOTATION_MANIFEST_HASH, image.manifest_digest)
    add(ANNOTATION_ENTRYPOINT, runtime.get("Entrypoint"))
    add(ANNOTATION_CMD, runtime.get("Cmd"))
    if archive and len(image.layers) > 1:
        add(ANNOTATION_TAG, ref.tag)  # the v1 path writes it on layers with a parent
    return [{"name": k, "value": v} for k, v in notes.items()]


def squashed_manifest(image: SourceImage, path_whitelist: list[str] | None = None
                      ) -> dict[str, Any]:
    """The manifest of the single squashed ACI."""
    manifest: dict[str, Any] = {
        "acKind": "ImageManifest",
        "acVersion": AC_VERSION,
        "name": appc_name(image.ref),
        "labels": _labels(image),
    }
    app = build_app(image.config)
    if app is not None:
        manifest["app"] = app
    manifest["annotations"] = _annotations(image)
    if path_whitelist:
        manifest["pathWhitelist"] = path_whitelist
    return manifest


def layer_id(image: SourceImage, index: int) -> str:
    """The layer ID docker2aci put in a --nosquash layer's name: the v1 layer ID of an
    archive, else the layer digest (`sha256:HEX`)."""
    if image.legacy_ids:
        return image.legacy_ids[index]
    layer = image.layers[index]
    return layer.digest or layer.diff_id or layer.short


def layer_name(image: SourceImage, index: int) -> str:
    """A layer ACI's name: docker2aci's `REGISTRY/REPOSITORY-LAYERID`, Go-sanitized."""
    return layer_identifier(image.ref, layer_id(image, index))


def layer_manifest(image: SourceImage, index: int, parent_id: str | None,
                   path_whitelist: list[str] | None = None) -> dict[str, Any]:
    """The manifest of layer `index` in a --nosquash chain; the top layer carries the app."""
    top = index == len(image.layers) - 1
    manifest: dict[str, Any] = squashed_manifest(image, path_whitelist) if top else {
        "acKind": "ImageManifest", "acVersion": AC_VERSION, "labels": [],
        "annotations": [{"name": name, "value": value} for name, value in (
            (ANNOTATION_REGISTRY, image.ref.registry),
            (ANNOTATION_REPOSITORY, image.ref.repository)) if value]}
    manifest["name"] = layer_name(image, index)
    manifest["labels"] = _labels(image, {"layer": image.layers[index].short})
    manifest["annotations"].append({"name": ANNOTATION_LAYER,
                                    "value": image.layers[index].digest
                                    or image.layers[index].diff_id or ""})
    if index > 0:
        manifest["dependencies"] = [{
            "imageName": layer_name(image, index - 1),
            "imageID": parent_id,
            "labels": _labels(image, {"layer": image.layers[index - 1].short}),
        }]
    # Keep the key order readable: name first, like every other manifest.
    order = ["acKind", "acVersion", "name", "labels", "app", "dependencies", "pathWhitelist",
             "annotations"]
    return {key: manifest[key] for key in order if key in manifest}


def validated_json(manifest: dict[str, Any]) -> bytes:
    """Check the manifest with the format core's rules, then serialize it."""
    try:
        ImageManifest.from_dict(manifest)
    except ManifestError as err:
        raise DockerError(f"the converted manifest is invalid: {err}", reason="bad-manifest") from err
    encoded = json.dumps(manifest, indent=2).encode() + b"\n"
    if len(encoded) > MAX_MANIFEST_SIZE:
        # Only a --nosquash path whitelist of a very large image gets here.
        raise DockerError(f"the converted manifest would be {len(encoded)} bytes, over the "
                          f"{MAX_MANIFEST_SIZE} byte limit ACI readers accept (a path whitelist "
                          "of too many files? convert without --nosquash)", reason="too-large")
    return encoded
