"""Edits of the manifest being built, on its appc JSON form (a dict).

Each function mirrors one acbuild subcommand: it only changes the dict. Validation is the
format core's job (`ImageManifest.from_dict`), run by the caller before anything is saved, so
an invalid value is reported with the core's message and the saved manifest stays as it was.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from registry.aci import APPC_VERSION
from registry.build.errors import BuildError, NotFoundError

# The name acbuild gives a fresh image; `write` refuses an image still carrying it.
PLACEHOLDER_NAME = "acbuild-unnamed"
# acbuild v0.4.0 writes appc.io/acbuild/command-N; acbuild before 0.3 wrote coreos.com/...
# Numbering goes on after the highest of either, so an image begun from an older acbuild's
# keeps its history in order (v0.4.0 itself looks at its own prefix only).
HISTORY_ANNOTATION = "appc.io/acbuild/command-{}"
_HISTORY_NUMBER = re.compile(r"^(?:appc\.io|coreos\.com)/acbuild/command-(\d+)$")

Manifest = dict[str, Any]


def new_manifest(os_name: str, arch: str) -> Manifest:
    """The manifest of an empty build: placeholder name, host platform, an app running as root."""
    return {
        "acKind": "ImageManifest",
        "acVersion": APPC_VERSION,
        "name": PLACEHOLDER_NAME,
        "labels": [{"name": "arch", "value": arch}, {"name": "os", "value": os_name}],
        "app": _new_app(),
    }


def _new_app() -> dict[str, Any]:
    # user and group are required by the spec; acbuild starts every app as root.
    return {"user": "0", "group": "0"}


def _app(manifest: Manifest) -> dict[str, Any]:
    if not manifest.get("app"):
        manifest["app"] = _new_app()
    return manifest["app"]


def _remove(items: list[dict[str, Any]], matches: Callable[[dict[str, Any]], bool]) -> bool:
    """Drop every matching item in place; report whether there was one."""
    kept = [item for item in items if not matches(item)]
    found = len(kept) != len(items)
    items[:] = kept
    return found


def _remove_or_fail(items: list[dict[str, Any]] | None, matches: Callable[[dict[str, Any]], bool]) -> None:
    if not items or not _remove(items, matches):
        raise NotFoundError()


def _set_pair(items: list[dict[str, Any]], name: str, value: Any) -> None:
    """Update the value of `name` where it stands, or append it (acbuild's Set semantics)."""
    for item in items:
        if item.get("name") == name:
            item["value"] = value
            return
    items.append({"name": name, "value": value})


def _not_empty(what: str, value: str) -> None:
    if value == "":
        raise BuildError(f"{what} cannot be empty")


def set_name(manifest: Manifest, name: str) -> None:
    _not_empty("name", name)
    manifest["name"] = name


def set_exec(manifest: Manifest, command: list[str]) -> None:
    if not command:
        raise BuildError("no command given: use set-exec -- CMD [ARGS...]")
    _app(manifest)["exec"] = list(command)


def set_user(manifest: Manifest, user: str) -> None:
    _not_empty("user", user)
    _app(manifest)["user"] = user


def set_group(manifest: Manifest, group: str) -> None:
    _not_empty("group", group)
    _app(manifest)["group"] = group


def set_working_directory(manifest: Manifest, directory: str) -> None:
    _not_empty("working directory", directory)
    _app(manifest)["workingDirectory"] = directory


def add_label(manifest: Manifest, name: str, value: str) -> None:
    labels = manifest.setdefault("labels", [])
    _remove(labels, lambda label: label.get("name") == name)
    labels.append({"name": name, "value": value})


def remove_label(manifest: Manifest, name: str) -> None:
    _remove_or_fail(manifest.get("labels"), lambda label: label.get("name") == name)


def add_environment(manifest: Manifest, name: str, value: str) -> None:
    _set_pair(_app(manifest).setdefault("environment", []), name, value)


def remove_environment(manifest: Manifest, name: str) -> None:
    app = manifest.get("app") or {}
    _remove_or_fail(app.get("environment"), lambda variable: variable.get("name") == name)


def add_annotation(manifest: Manifest, name: str, value: str) -> None:
    _set_pair(manifest.setdefault("annotations", []), name, value)


def remove_annotation(manifest: Manifest, name: str) -> None:
    _remove_or_fail(manifest.get("annotations"), lambda annotation: annotation.get("name") == name)


def add_port(manifest: Manifest, name: str, protocol: str, port: int, *, count: int = 1,
             socket_activated: bool = False) -> None:
    ports = _app(manifest).setdefault("ports", [])
    _remove(ports, lambda existing: existing.get("name") == name)
    ports.append({"name": name, "protocol": protocol, "port": port, "count": count,
                  "socketActivated": socket_activated})


def remove_port(manifest: Manifest, name_or_number: str) -> None:
    """Remove by port name or by port number, as acbuild does."""
    app = manifest.get("app") or {}
    _remove_or_fail(app.get("ports"), lambda port: port.get("name") == name_or_number
                    or str(port.get("port")) == name_or_number)


def add_mount(manifest: Manifest, name: str, path: str, *, read_only: bool = False) -> None:
    mounts = _app(manifest).setdefault("mountPoints", [])
    # A new mount point replaces any with the same name or the same path.
    _remove(mounts, lambda mount: mount.get("name") in (name, path) or mount.get("path") in (name, path))
    mounts.append({"name": name, "path": path, "readOnly": read_only})


def remove_mount(manifest: Manifest, name_or_path: str) -> None:
    app = manifest.get("app") or {}
    _remove_or_fail(app.get("mountPoints"), lambda mount: mount.get("name") == name_or_path
                    or mount.get("path") == name_or_path)


def parse_isolator_value(text: bytes | str, source: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise BuildError(f"{source}: isolator value is not valid JSON: {error}") from None


def add_isolator(manifest: Manifest, name: str, value: Any) -> None:
    isolators = _app(manifest).setdefault("isolators", [])
    _remove(isolators, lambda isolator: isolator.get("name") == name)
    isolators.append({"name": name, "value": value})


def remove_isolator(manifest: Manifest, name: str) -> None:
    app = manifest.get("app") or {}
    _remove_or_fail(app.get("isolators"), lambda isolator: isolator.get("name") == name)


def parse_label_option(text: str) -> tuple[str, str]:
    """`--label k=v` of `dependency add`."""
    name, sep, value = text.partition("=")
    if not sep:
        raise BuildError(f"no '=' character in {text!r}")
    return name, value


def add_dependency(manifest: Manifest, image_name: str, *, image_id: str | None = None,
                   labels: Sequence[tuple[str, str]] = (), size: int | None = None) -> None:
    names = [name for name, _ in labels]
    for name in names:
        if names.count(name) > 1:
            raise BuildError(f"multiple {name} labels specified")
    dependency: dict[str, Any] = {"imageName": image_name}
    if image_id:
        dependency["imageID"] = image_id
    if labels:
        dependency["labels"] = [{"name": name, "value": value} for name, value in labels]
    if size:
        dependency["size"] = size
    dependencies = manifest.setdefault("dependencies", [])
    _remove(dependencies, lambda existing: existing.get("imageName") == image_name)
    dependencies.append(dependency)


def remove_dependency(manifest: Manifest, image_name: str) -> None:
    _remove_or_fail(manifest.get("dependencies"),
                    lambda dependency: dependency.get("imageName") == image_name)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
               "\t": "\\t", "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def go_quote(text: str) -> str:
    """A string quoted as Go's %q (strconv.Quote) quotes it, which acbuild's history uses."""
    out = []
    for char in text:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char == " " or (char.isprintable() and not char.isspace()):
            out.append(char)
        elif 0xDC80 <= ord(char) <= 0xDCFF:  # an undecodable byte (surrogateescape)
            out.append(f"\\x{ord(char) - 0xDC00:02x}")
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def history_line(command: str, args: list[str]) -> str:
    """How acbuild records a command in the image's history: `acbuild copy "a" "/b"`."""
    quoted = " ".join(go_quote(arg) for arg in args)
    return f"acbuild {command} {quoted}".rstrip()


def add_history(manifest: Manifest, line: str) -> None:
    """Record a command as the next `appc.io/acbuild/command-N` annotation."""
    annotations = manifest.setdefault("annotations", [])
    numbers = [int(found.group(1)) for annotation in annotations
               if (found := _HISTORY_NUMBER.match(str(annotation.get("name", ""))))]
    annotations.append({"name": HISTORY_ANNOTATION.format(max(numbers, default=0) + 1),
                        "value": line})
