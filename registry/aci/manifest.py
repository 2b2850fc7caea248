"""ImageManifest: the appc image manifest, parsed, validated and serialized."""

from __future__ import annotations

import json
import re
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


# A manifest is small and shallow: the deepest appc manifest nests about 6 levels. The bound
# keeps hostile input (100,000 `[`) away from json's recursive decoder, which would otherwise
# die with a RecursionError; the size cap is the one the archive rules apply to the entry.
MAX_MANIFEST_DEPTH = 64
MAX_MANIFEST_SIZE = 1 << 20
# A JSON string, or an unterminated one running to the end: always matched at its first
# quote and never backtracked (possessive), so the scan stays linear on hostile input.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def check_json_shape(data: bytes, what: str, *, max_depth: int = MAX_MANIFEST_DEPTH,
                     max_size: int = MAX_MANIFEST_SIZE) -> None:
    """Refuse JSON larger than `max_size` bytes or nesting deeper than `max_depth`, cheaply and
    without recursion (strings are skipped, then the brackets counted), before any parser."""
    if len(data) > max_size:
        raise ManifestError(f"{what}: {len(data)} bytes, more than the {max_size} allowed",
                            reason="manifest-too-large")
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return  # cannot nest deeper than it has brackets
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > max_depth:
                raise ManifestError(f"{what}: JSON nested deeper than {max_depth} levels",
                                    reason="manifest-too-deep")
        else:
            depth -= 1


def decode_json(data: bytes | str, what: str) -> dict[str, Any]:
    """Decode a manifest's JSON text; every failure is a ManifestError (reason invalid-json,
    manifest-too-large or manifest-too-deep: those two are checked before json sees it)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    check_json_shape(raw, what)
    try:
        # appc manifests are UTF-8 (json.loads would also guess UTF-16/32 from bytes).
        decoded = json.loads(data.decode("utf-8") if isinstance(data, bytes | bytearray)
                             else data)
    except (ValueError, UnicodeDecodeError) as error:
        raise ManifestError(f"{what}: invalid JSON: {error}", reason="invalid-json") from None
    except RecursionError:  # not reachable past check_json_shape; kept as the last guard
        raise ManifestError(f"{what}: JSON nested too deeply",
                            reason="manifest-too-deep") from None
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
