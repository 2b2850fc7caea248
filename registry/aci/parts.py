"""The building blocks shared by image and pod manifests, each a dataclass with the same
`from_dict(d, field)` / `to_dict()` pair; `from_dict` enforces appc's rules for that part."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from registry.aci import isolators as isolator_rules
from registry.aci.errors import ManifestError
from registry.aci.fields import as_list, as_object, get, join, string_list, string_map
from registry.aci.names import (
    ENV_NAME,
    check_date,
    check_identifier,
    check_image_id,
    check_name,
    check_os_arch,
    check_url,
)

EVENT_HANDLER_NAMES = ("pre-start", "post-stop")


def _items(data: dict[str, Any], key: str, field_name: str) -> list[tuple[str, Any]]:
    """The members of the list `data[key]` with the path naming each (`field.key[i]`)."""
    path = join(field_name, key)
    values = as_list(data.get(key) or [], path)
    return [(f"{path}[{index}]", value) for index, value in enumerate(values)]


@dataclass
class Label:
    name: str
    value: str

    @classmethod
    def from_dict(cls, data: Any, field_name: str = "label") -> Label:
        body = as_object(data, field_name)
        return cls(check_identifier(body.get("name"), join(field_name, "name")),
                   get(body, "value", str, field_name, required=True))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value}


def parse_labels(data: dict[str, Any], key: str, field_name: str) -> list[Label]:
    """A label list: unique names, never `name`, os/arch a known pair."""
    path = join(field_name, key)
    labels = [Label.from_dict(item, item_path) for item_path, item in _items(data, key, field_name)]
    seen: dict[str, str] = {}
    for label in labels:
        if label.name == "name":
            raise ManifestError(f'{path}: invalid label name "name"')
        if label.name in seen:
            raise ManifestError(f'{path}: duplicate label "{label.name}"')
        seen[label.name] = label.value
    check_os_arch(seen, path)
    return labels


@dataclass
class Annotation:
    name: str
    value: str

    @classmethod
    def from_dict(cls, data: Any, field_name: str = "annotation") -> Annotation:
        body = as_object(data, field_name)
        return cls(check_identifier(body.get("name"), join(field_name, "name")),
                   get(body, "value", str, field_name, required=True))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value}


def parse_annotations(data: dict[str, Any], key: str, field_name: str) -> list[Annotation]:
    """Unique names; `created` an RFC 3339 date; `homepage`/`documentation` http(s) URLs."""
    path = join(field_name, key)
    annotations = [Annotation.from_dict(item, item_path)
                   for item_path, item in _items(data, key, field_name)]
    seen: set[str] = set()
    for annotation in annotations:
        if annotation.name in seen:
            raise ManifestError(f'{path}: duplicate annotation "{annotation.name}"')
        seen.add(annotation.name)
        if annotation.name == "created":
            check_date(annotation.value, f"{path}.created")
        elif annotation.name in ("homepage", "documentation"):
            check_url(annotation.value, f"{path}.{annotation.name}")
    return annotations


@dataclass
class EnvironmentVariable:
    name: str
    value: str

    @classmethod
    def from_dict(cls, data: Any, field_name: str = "environment") -> EnvironmentVariable:
        body = as_object(data, field_name)
        name = get(body, "name", str, field_name, required=True)
        if not ENV_NAME.fullmatch(name):
            raise ManifestError(
                f"{join(field_name, 'name')}: {name!r} is not a valid environment variable name"
                " (^[A-Za-z_][A-Za-z_0-9.-]*$)")
        return cls(name, get(body, "value", str, field_name, default=""))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value}


@dataclass
class Isolator:
    name: str
    value: Any

    @classmethod
    def from_dict(cls, data: Any, field_name: str = "isolator") -> Isolator:
        body = as_object(data, field_name)
        name = check_identifier(body.get("name"), join(field_name, "name"))
        if "value" not in body:
            raise ManifestError(f"{join(field_name, 'value')}: is required")
        isolator_rules.check_isolator_value(name, body["value"], field_name)
        return cls(name, body["value"])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value}


def parse_isolators(data: dict[str, Any], key: str, field_name: str) -> list[Isolator]:
    isolators = [Isolator.from_dict(item, item_path)
                 for item_path, item in _items(data, key, field_name)]
    isolator_rules.check_isolator_set([i.name for i in isolators], join(field_name, key))
    return isolators


@dataclass
class Port:
    name: str
    protocol: str
    port: int
    count: int = 1
    socket_activated: bool = False

    @classmethod
    def from_dict(cls, data: Any, field_name: str = "port") -> Port:
        body = as_object(data, field_name)
        name = check_name(body.get("name"), join(field_name, "name"))
        protocol = get(body, "protocol", str, field_name, required=True)
        number = get(body, "port", int, field_name, required=True)
        count = get(body, "count", int, field_name, default=0) or 1
        if not 1 <= number <= 65535:
            raise ManifestError(f"{join(field_name, 'port')}: {number} not in range 1-65535")
        if count < 0 or number + count > 65536:
            raise ManifestError(
                f"{join(field_name, 'count')}: port range {number}+{count} ends past 65535")
        activated = get(body, "socketActivated", bool, field_name, default=False)
        return cls(name, protocol, number, count, activated)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "protocol": self.protocol, "port": self.port,
                "count": self.count, "socketActivated": self.socket_activated}


@dataclass
class MountPoint:
    name: str
    path: str
    read_only: bool = False

    @classmethod
    def from_dict(cls, data: Any, field_name: str = "mountPoint") -> MountPoint:
        body = as_object(data, field_name)
        name = check_name(body.get("name"), join(field_name, "name"))
        path = get(body, "path", str, field_name, required=True)
        if not path:
            raise ManifestError(f"{join(field_name, 'path')}: must be set")
        return cls(name, path, get(body, "readOnly", bool, field_name, default=False))

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"name": self.name, "path": self.path}
        if self.read_only:
            result["readOnly"] = True
        return result


@dataclass
class EventHandler:
    name: str
    exec: list[str]

    @classmethod
    def from_dict(cls, data: Any, field_name: str = "eventHandler") -> EventHandler:
        body = as_object(data, field_name)
        name = get(body, "name", str, field_name, required=True)
        if name not in EVENT_HANDLER_NAMES:
            raise ManifestError(
                f"{join(field_name, 'name')}: bad eventHandler name {name!r}"
                " (must be pre-start or post-stop)")
        return cls(name, string_list(body, "exec", field_name))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "exec": list(self.exec)}


def _unique(names: list[str], what: str, path: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ManifestError(f'{path}: duplicate {what} "{name}"')
        seen.add(name)


@dataclass
class App:
    exec: list[str] = field(default_factory=list)
    user: str = "0"
    group: str = "0"
    supplementary_gids: list[int] = field(default_factory=list)
    event_handlers: list[EventHandler] = field(default_factory=list)
    working_directory: str = ""
    environment: list[EnvironmentVariable] = field(default_factory=list)
    mount_points: list[MountPoint] = field(default_factory=list)
    ports: list[Port] = field(default_factory=list)
    isolators: list[Isolator] = field(default_factory=list)
    user_annotations: dict[str, str] = field(default_factory=dict)
    user_labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, field_name: str = "app") -> App:
        body = as_object(data, field_name)
        user = get(body, "user", str, field_name, default="")
        group = get(body, "group", str, field_name, default="")
        if not user:
            raise ManifestError(f"{join(field_name, 'user')}: is required (a name, number or path)")
        if not group:
            raise ManifestError(f"{join(field_name, 'group')}: is required (a name, number or path)")
        working_directory = get(body, "workingDirectory", str, field_name, default="")
        if working_directory and not posixpath.isabs(working_directory):
            raise ManifestError(
                f"{join(field_name, 'workingDirectory')}: {working_directory!r} must be absolute")
        gids = get(body, "supplementaryGIDs", list, field_name, default=[])
        for index, gid in enumerate(gids):
            if isinstance(gid, bool) or not isinstance(gid, int) or gid < 0:
                raise ManifestError(
                    f"{join(field_name, 'supplementaryGIDs')}[{index}]: must be a non-negative integer")
        handlers = [EventHandler.from_dict(item, path)
                    for path, item in _items(body, "eventHandlers", field_name)]
        _unique([h.name for h in handlers], "eventHandler", join(field_name, "eventHandlers"))
        environment = [EnvironmentVariable.from_dict(item, path)
                       for path, item in _items(body, "environment", field_name)]
        _unique([e.name for e in environment], "environment variable",
                join(field_name, "environment"))
        mount_points = [MountPoint.from_dict(item, path)
                        for path, item in _items(body, "mountPoints", field_name)]
        _unique([m.name for m in mount_points], "mount point", join(field_name, "mountPoints"))
        ports = [Port.from_dict(item, path) for path, item in _items(body, "ports", field_name)]
        _unique([p.name for p in ports], "port", join(field_name, "ports"))
        return cls(
            exec=string_list(body, "exec", field_name),
            user=user, group=group, supplementary_gids=list(gids), event_handlers=handlers,
            working_directory=working_directory, environment=environment,
            mount_points=mount_points, ports=ports,
            isolators=parse_isolators(body, "isolators", field_name),
            user_annotations=string_map(body, "userAnnotations", field_name),
            user_labels=string_map(body, "userLabels", field_name),
        )

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"exec": list(self.exec), "user": self.user,
                                  "group": self.group}
        optional: list[tuple[str, Any]] = [
            ("supplementaryGIDs", list(self.supplementary_gids)),
            ("eventHandlers", [h.to_dict() for h in self.event_handlers]),
            ("workingDirectory", self.working_directory),
            ("environment", [e.to_dict() for e in self.environment]),
            ("mountPoints", [m.to_dict() for m in self.mount_points]),
            ("ports", [p.to_dict() for p in self.ports]),
            ("isolators", [i.to_dict() for i in self.isolators]),
            ("userAnnotations", dict(self.user_annotations)),
            ("userLabels", dict(self.user_labels)),
        ]
        result.update((key, value) for key, value in optional if value)
        return result

    def env(self, name: str) -> str | None:
        return next((e.value for e in self.environment if e.name == name), None)


@dataclass
class Dependency:
    image_name: str
    image_id: str | None = None
    labels: list[Label] = field(default_factory=list)
    size: int | None = None

    @classmethod
    def from_dict(cls, data: Any, field_name: str = "dependency") -> Dependency:
        body = as_object(data, field_name)
        name = check_identifier(body.get("imageName"), join(field_name, "imageName"))
        image_id = body.get("imageID")
        if image_id is not None:
            check_image_id(image_id, join(field_name, "imageID"))
        size = get(body, "size", int, field_name)
        if size is not None and size < 0:
            raise ManifestError(f"{join(field_name, 'size')}: must not be negative")
        return cls(name, image_id, parse_labels(body, "labels", field_name), size or None)

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"imageName": self.image_name}
        if self.image_id:
            result["imageID"] = self.image_id
        if self.labels:
            result["labels"] = [label.to_dict() for label in self.labels]
        if self.size:
            result["size"] = self.size
        return result

    def label(self, name: str) -> str | None:
        return next((label.value for label in self.labels if label.name == name), None)
