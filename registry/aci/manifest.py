"""ImageManifest: the appc image manifest, parsed, validated and serialized."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

from registry.aci.errors import ManifestError
from registry.aci.fields import as_object, get, string_list
from registry.aci.names import check_identifier, check_semver
from registry.aci.parts import (
    Annotation,
    App,
    Dependency,
    Label,
    parse_annotations,
    parse_labels,
)

APPC_VERSION = "0.8.11"
IMAGE_MANIFEST_KIND = "ImageManifest"
POD_MANIFEST_KIND = "PodManifest"

_Manifest = TypeVar("_Manifest")


def decode_json(data: bytes | str, what: str) -> dict[str, Any]:
    """Decode a manifest's JSON text; every failure is a ManifestError (reason invalid-json)."""
    try:
        # appc manifests are UTF-8 (json.loads would also guess UTF-16/32 from bytes).
        decoded = json.loads(data.decode("utf-8") if isinstance(data, bytes | bytearray)
                             else data)
    except (ValueError, UnicodeDecodeError) as error:
        raise ManifestError(f"{what}: invalid JSON: {error}", reason="invalid-json") from None
    if not isinstance(decoded, dict):
        raise ManifestError(f"{what}: must be a JSON object", reason="invalid-json")
    return decoded


def encode_json(data: dict[str, Any], *, pretty: bool) -> bytes:
    if pretty:
        return json.dumps(data, indent=4, ensure_ascii=False).encode() + b"\n"
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def check_kind(body: dict[str, Any], expected: str) -> None:
    kind = body.get("acKind")
    if kind != expected:
        raise ManifestError(f'acKind: must be "{expected}", got {kind!r}')


@dataclass
class ImageManifest:
    name: str
    labels: list[Label] = field(default_factory=list)
    app: App | None = None
    annotations: list[Annotation] = field(default_factory=list)
    dependencies: list[Dependency] = field(default_factory=list)
    path_whitelist: list[str] = field(default_factory=list)
    ac_version: str = APPC_VERSION

    @classmethod
    def from_json(cls, data: bytes | str) -> ImageManifest:
        return cls.from_dict(decode_json(data, "manifest"))

    @classmethod
    def from_dict(cls, data: Any) -> ImageManifest:
        body = as_object(data, "manifest")
        check_kind(body, IMAGE_MANIFEST_KIND)
        ac_version = check_semver(body.get("acVersion"), "acVersion")
        name = check_identifier(body.get("name"), "name")
        app_body = body.get("app")
        app = App.from_dict(app_body, "app") if app_body is not None else None
        dependencies = [Dependency.from_dict(item, f"dependencies[{index}]")
                        for index, item in enumerate(get(body, "dependencies", list, "",
                                                         default=[]))]
        whitelist = string_list(body, "pathWhitelist", "")
        for index, path in enumerate(whitelist):
            if not path.startswith("/"):
                raise ManifestError(f"pathWhitelist[{index}]: {path!r} must be an absolute path")
        return cls(name=name, labels=parse_labels(body, "labels", ""), app=app,
                   annotations=parse_annotations(body, "annotations", ""),
                   dependencies=dependencies, path_whitelist=whitelist, ac_version=ac_version)

    def to_dict(self) -> dict[str, Any]:
        """The appc JSON object; raises ManifestError if the object breaks a rule."""
        result = self._unchecked_dict()
        type(self).from_dict(result)
        return result

    def to_json(self, pretty: bool = False) -> bytes:
        return encode_json(self.to_dict(), pretty=pretty)

    def _unchecked_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"acKind": IMAGE_MANIFEST_KIND, "acVersion": self.ac_version,
                                  "name": self.name}
        if self.labels:
            result["labels"] = [label.to_dict() for label in self.labels]
        if self.app is not None:
            result["app"] = self.app.to_dict()
        if self.annotations:
            result["annotations"] = [a.to_dict() for a in self.annotations]
        if self.dependencies:
            result["dependencies"] = [d.to_dict() for d in self.dependencies]
        if self.path_whitelist:
            result["pathWhitelist"] = list(self.path_whitelist)
        return result

    def label(self, name: str) -> str | None:
        return next((label.value for label in self.labels if label.name == name), None)

    def annotation(self, name: str) -> str | None:
        return next((a.value for a in self.annotations if a.name == name), None)
