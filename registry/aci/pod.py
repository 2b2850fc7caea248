"""PodManifest: the appc pod manifest (spec/pods.md) and its parts."""

from __future__ import annotations

import ipaddress
import posixpath
from dataclasses import dataclass, field
from typing import Any

from registry.aci.errors import ManifestError
from registry.aci.fields import as_object, get, join, string_map
from registry.aci.manifest import (
    APPC_VERSION,
    POD_MANIFEST_KIND,
    check_kind,
    decode_json,
    encode_json,
)
from registry.aci.names import check_identifier, check_image_id, check_name, check_semver
from registry.aci.parts import (
    Annotation,
    App,
    Isolator,
    Label,
    Port,
    parse_annotations,
    parse_isolators,
    parse_labels,
)

EMPTY_VOLUME_MODE = "0755"  # appc's default for an empty volume (uid and gid default to 0)


@dataclass
class RuntimeImage:
    id: str
    name: str | None = None
    labels: list[Label] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Any, field_name: str = "image") -> RuntimeImage:
        body = as_object(data, field_name)
        image_id = check_image_id(body.get("id"), join(field_name, "id"))
        name = body.get("name")
        if name is not None:
            check_identifier(name, join(field_name, "name"))
        return cls(image_id, name, parse_labels(body, "labels", field_name))

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if self.name is not None:
            result["name"] = self.name
        result["id"] = self.id
        if self.labels:
            result["labels"] = [label.to_dict() for label in self.labels]
        return result


@dataclass
class Volume:
    name: str
    kind: str
    source: str = ""
    read_only: bool | None = None
    recursive: bool | None = None
    mode: str | None = None
    uid: int | None = None
    gid: int | None = None

    @classmethod
    def from_dict(cls, data: Any, field_name: str = "volume") -> Volume:
        body = as_object(data, field_name)
        name = check_name(body.get("name"), join(field_name, "name"))
        kind = get(body, "kind", str, field_name, required=True)
        volume = cls(name, kind, get(body, "source", str, field_name, default=""),
                     get(body, "readOnly", bool, field_name),
                     get(body, "recursive", bool, field_name),
                     get(body, "mode", str, field_name), get(body, "uid", int, field_name),
                     get(body, "gid", int, field_name))
        if kind == "empty":
            if volume.source:
                raise ManifestError(f"{join(field_name, 'source')}: must be empty for an empty volume")
            # appc fills these in for empty volumes (schema/types/volume.go).
            volume.mode = volume.mode if volume.mode is not None else EMPTY_VOLUME_MODE
            volume.uid = volume.uid if volume.uid is not None else 0
            volume.gid = volume.gid if volume.gid is not None else 0
        elif kind == "host":
            if not volume.source:
                raise ManifestError(f"{join(field_name, 'source')}: is required for a host volume")
            if not posixpath.isabs(volume.source):
                raise ManifestError(
                    f"{join(field_name, 'source')}: {volume.source!r} must be an absolute path")
            for key in ("mode", "uid", "gid"):
                if getattr(volume, key) is not None:
                    raise ManifestError(f"{join(field_name, key)}: cannot be set for a host volume")
        else:
            raise ManifestError(f'{join(field_name, "kind")}: {kind!r} must be "host" or "empty"')
        return volume

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.source:
            result["source"] = self.source
        optional = {"readOnly": self.read_only, "recursive": self.recursive, "mode": self.mode,
                    "uid": self.uid, "gid": self.gid}
        result.update((key, value) for key, value in optional.items() if value is not None)
        return result


@dataclass
class Mount:
    volume: str
    path: str
    app_volume: Volume | None = None

    @classmethod
    def from_dict(cls, data: Any, field_name: str = "mount") -> Mount:
        body = as_object(data, field_name)
        volume = check_name(body.get("volume"), join(field_name, "volume"))
        path = get(body, "path", str, field_name, required=True)
        if not path:
            raise ManifestError(f"{join(field_name, 'path')}: must be set")
        app_volume = body.get("appVolume")
        return cls(volume, path, Volume.from_dict(app_volume, join(field_name, "appVolume"))
                   if app_volume is not None else None)

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"volume": self.volume, "path": self.path}
        if self.app_volume is not None:
            result["appVolume"] = self.app_volume.to_dict()
        return result


@dataclass
class RuntimeApp:
    name: str
    image: RuntimeImage
    app: App | None = None
    read_only_root_fs: bool = False
    mounts: list[Mount] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Any, field_name: str = "app") -> RuntimeApp:
        body = as_object(data, field_name)
        name = check_name(body.get("name"), join(field_name, "name"))
        if body.get("image") is None:
            raise ManifestError(f"{join(field_name, 'image')}: is required")
        image = RuntimeImage.from_dict(body["image"], join(field_name, "image"))
        app = App.from_dict(body["app"], join(field_name, "app")) \
            if body.get("app") is not None else None
        mounts = [Mount.from_dict(item, f"{join(field_name, 'mounts')}[{index}]")
                  for index, item in enumerate(get(body, "mounts", list, field_name, default=[]))]
        return cls(name, image, app, get(body, "readOnlyRootFS", bool, field_name, default=False),
                   mounts, parse_annotations(body, "annotations", field_name))

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"name": self.name, "image": self.image.to_dict()}
        if self.app is not None:
            result["app"] = self.app.to_dict()
        if self.read_only_root_fs:
            result["readOnlyRootFS"] = True
        if self.mounts:
            result["mounts"] = [m.to_dict() for m in self.mounts]
        if self.annotations:
            result["annotations"] = [a.to_dict() for a in self.annotations]
        return result


@dataclass
class ExposedPort:
    name: str
    host_port: int
    host_ip: str | None = None
    pod_port: Port | None = None

    @classmethod
    def from_dict(cls, data: Any, field_name: str = "port") -> ExposedPort:
        body = as_object(data, field_name)
        name = check_name(body.get("name"), join(field_name, "name"))
        host_port = get(body, "hostPort", int, field_name, required=True)
        if not 0 <= host_port <= 65535:
            raise ManifestError(f"{join(field_name, 'hostPort')}: {host_port} not in range 0-65535")
        host_ip = get(body, "hostIP", str, field_name)
        if host_ip is not None:
            try:
                ipaddress.ip_address(host_ip)
            except ValueError:
                raise ManifestError(
                    f"{join(field_name, 'hostIP')}: {host_ip!r} is not an IP address") from None
        pod_port = body.get("podPort")
        return cls(name, host_port, host_ip, Port.from_dict(pod_port, join(field_name, "podPort"))
                   if pod_port is not None else None)

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"name": self.name, "hostPort": self.host_port}
        if self.host_ip is not None:
            result["hostIP"] = self.host_ip
        if self.pod_port is not None:
            result["podPort"] = self.pod_port.to_dict()
        return result


@dataclass
class PodManifest:
    apps: list[RuntimeApp] = field(default_factory=list)
    volumes: list[Volume] = field(default_factory=list)
    isolators: list[Isolator] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)
    ports: list[ExposedPort] = field(default_factory=list)
    user_annotations: dict[str, str] = field(default_factory=dict)
    user_labels: dict[str, str] = field(default_factory=dict)
    ac_version: str = APPC_VERSION

    @classmethod
    def from_json(cls, data: bytes | str) -> PodManifest:
        return cls.from_dict(decode_json(data, "pod manifest"))

    @classmethod
    def from_dict(cls, data: Any) -> PodManifest:
        body = as_object(data, "pod manifest")
        check_kind(body, POD_MANIFEST_KIND)
        ac_version = check_semver(body.get("acVersion"), "acVersion")
        apps = [RuntimeApp.from_dict(item, f"apps[{index}]")
                for index, item in enumerate(get(body, "apps", list, "", default=[]))]
        volumes = [Volume.from_dict(item, f"volumes[{index}]")
                   for index, item in enumerate(get(body, "volumes", list, "", default=[]))]
        ports = [ExposedPort.from_dict(item, f"ports[{index}]")
                 for index, item in enumerate(get(body, "ports", list, "", default=[]))]
        _unique([a.name for a in apps], "apps", "app")
        _unique([v.name for v in volumes], "volumes", "volume")
        _unique([p.name for p in ports], "ports", "port")
        return cls(apps=apps, volumes=volumes, isolators=parse_isolators(body, "isolators", ""),
                   annotations=parse_annotations(body, "annotations", ""), ports=ports,
                   user_annotations=string_map(body, "userAnnotations", ""),
                   user_labels=string_map(body, "userLabels", ""), ac_version=ac_version)

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "acVersion": self.ac_version, "acKind": POD_MANIFEST_KIND,
            "apps": [a.to_dict() for a in self.apps],
            "volumes": [v.to_dict() for v in self.volumes],
            "isolators": [i.to_dict() for i in self.isolators],
            "annotations": [a.to_dict() for a in self.annotations],
            "ports": [p.to_dict() for p in self.ports],
        }
        if self.user_annotations:
            result["userAnnotations"] = dict(self.user_annotations)
        if self.user_labels:
            result["userLabels"] = dict(self.user_labels)
        PodManifest.from_dict(result)
        return result

    def to_json(self, pretty: bool = False) -> bytes:
        return encode_json(self.to_dict(), pretty=pretty)

    def app(self, name: str) -> RuntimeApp | None:
        return next((a for a in self.apps if a.name == name), None)

    def annotation(self, name: str) -> str | None:
        return next((a.value for a in self.annotations if a.name == name), None)


def _unique(names: list[str], path: str, what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ManifestError(f'{path}: duplicate {what} name "{name}"')
        seen.add(name)
