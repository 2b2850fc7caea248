"""Typed access to the members of a decoded JSON object, with errors naming the field."""

from __future__ import annotations

from typing import Any

from registry.aci.errors import ManifestError

_JSON_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
                    int: "an integer"}


# Every member name of appc's JSON objects. Go's encoding/json (so actool and rkt) matches
# member names case-insensitively, an exact match winning; as_object does the same.
KNOWN_MEMBERS = (
    "acKind", "acVersion", "name", "value", "labels", "app", "annotations", "dependencies",
    "pathWhitelist", "exec", "user", "group", "supplementaryGIDs", "eventHandlers",
    "workingDirectory", "environment", "mountPoints", "ports", "isolators", "userAnnotations",
    "userLabels", "protocol", "port", "count", "socketActivated", "path", "readOnly",
    "imageName", "imageID", "size", "apps", "volumes", "image", "id", "readOnlyRootFS",
    "mounts", "volume", "appVolume", "kind", "source", "recursive", "mode", "uid", "gid",
    "hostPort", "hostIP", "podPort", "default", "request", "limit", "set", "errno", "role",
    "type", "level",
)
_CANONICAL = {member.lower(): member for member in KNOWN_MEMBERS}
_KNOWN = frozenset(KNOWN_MEMBERS)


def as_object(value: object, field: str) -> dict[str, Any]:
    """A JSON object, its member names folded to appc's spelling (see KNOWN_MEMBERS)."""
    if not isinstance(value, dict):
        raise ManifestError(f"{field}: must be an object")
    if all(key in _KNOWN for key in value):
        return value
    folded = dict(value)
    for key, item in value.items():
        canonical = _CANONICAL.get(key.lower())
        if canonical is not None and canonical != key and canonical not in value:
            folded[canonical] = item
            del folded[key]
    return folded


def as_list(value: object, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise ManifestError(f"{field}: must be a list")
    return value


def get(data: dict[str, Any], key: str, kind: type, field: str, *, required: bool = False,
        default: Any = None) -> Any:
    """`data[key]` checked to be of JSON type `kind`; JSON null counts as absent."""
    value = data.get(key)
    path = f"{field}.{key}" if field else key
    if value is None:
        if required:
            raise ManifestError(f"{path}: is required")
        return default
    # bool is an int subclass in Python, but never a JSON number.
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ManifestError(f"{path}: must be an integer")
    if not isinstance(value, kind):
        raise ManifestError(f"{path}: must be {_JSON_TYPE_NAMES.get(kind, kind.__name__)}")
    return value


def string_list(data: dict[str, Any], key: str, field: str) -> list[str]:
    values = get(data, key, list, field, default=[])
    path = f"{field}.{key}" if field else key
    for index, item in enumerate(values):
        if not isinstance(item, str):
            raise ManifestError(f"{path}[{index}]: must be a string")
    return list(values)


def string_map(data: dict[str, Any], key: str, field: str) -> dict[str, str]:
    values = get(data, key, dict, field, default={})
    path = f"{field}.{key}" if field else key
    for name, item in values.items():
        if not isinstance(item, str):
            raise ManifestError(f"{path}.{name}: must be a string")
    return dict(values)


def join(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key
