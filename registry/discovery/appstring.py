"""App strings (`name[:version][,label=value...]`) and the host's appc os/arch.

`parse_app_string("example.com/app:v1,channel=beta")` gives
`AppRef(name="example.com/app", labels={"version": "v1", "os": <host>, "arch": <host>,
"channel": "beta"}, given=frozenset({"version", "channel"}))`. `labels` holds what discovery
renders into templates (defaults filled in: `version=latest`, host `os`/`arch`); `given` says which
labels the user wrote, and `labels_to_match()` which ones a fetched manifest must carry.
The rules follow appc's reference parser: at most one `:`, only right after the name.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from .errors import AppStringError

AC_IDENTIFIER = re.compile(r"^[a-z0-9]+([-._~/][a-z0-9]+)*$")
DEFAULT_VERSION = "latest"

# platform.machine() spellings -> appc arch label values (spec/types.md, os/arch table).
_LINUX_ARCHES = {
    "x86_64": "amd64", "amd64": "amd64",
    "aarch64": "aarch64", "arm64": "aarch64", "aarch64_be": "aarch64_be",
    "i386": "i386", "i486": "i386", "i586": "i386", "i686": "i386",
    "armv6l": "armv6l", "armv7l": "armv7l", "armv7b": "armv7b", "armv8l": "armv7l",
    "ppc64": "ppc64", "ppc64le": "ppc64le", "s390x": "s390x",
}
_FREEBSD_ARCHES = {"amd64": "amd64", "x86_64": "amd64", "i386": "i386", "arm": "arm"}
_DARWIN_ARCHES = {"x86_64": "x86_64", "i386": "i386"}


def appc_arch(machine: str, os_name: str = "linux") -> str:
    """The appc arch label for a `uname -m` machine name on `os_name`."""
    table = {"linux": _LINUX_ARCHES, "freebsd": _FREEBSD_ARCHES, "darwin": _DARWIN_ARCHES}
    arches = table.get(os_name, _LINUX_ARCHES)
    lowered = machine.lower()
    return arches.get(lowered, lowered)


def host_os() -> str:
    return platform.system().lower() or "linux"


def host_arch() -> str:
    return appc_arch(platform.machine(), host_os())


def check_identifier(value: str, what: str) -> str:
    """`value` if it is an AC Identifier, else an AppStringError naming `what` and the rule."""
    if not AC_IDENTIFIER.match(value):
        raise AppStringError(f'{what}: "{value}" is not an AC Identifier '
                             f"(lower-case letters and digits, separated by one of -._~/)")
    return value


@dataclass(frozen=True)
class AppRef:
    """An image reference for discovery: a name and the label values to render."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    given: frozenset[str] | None = None  # None: every label in `labels` was given

    def __post_init__(self) -> None:
        check_identifier(self.name, "name")
        for label in self.labels:
            check_identifier(label, "label")
            if label == "name":
                raise AppStringError('label: "name" is reserved for the image name')
        object.__setattr__(self, "labels", dict(self.labels))
        given = frozenset(self.labels) if self.given is None else frozenset(self.given)
        object.__setattr__(self, "given", given)

    @property
    def version(self) -> str:
        return self.labels.get("version", DEFAULT_VERSION)

    def labels_to_match(self) -> dict[str, str]:
        """Labels a fetched image's manifest must carry with these values.

        Every label the user gave plus the host os/arch; `version` only when it is not `latest`
        (the server decides what latest is, the manifest carries a real version).
        """
        given = self.given or frozenset()
        wanted = {k: v for k, v in self.labels.items() if k in given or k in ("os", "arch")}
        if wanted.get("version") == DEFAULT_VERSION:
            del wanted["version"]
        return wanted

    def template_values(self) -> dict[str, str]:
        """The values templates are rendered with: `{name}` plus every label."""
        return {**self.labels, "name": self.name}

    def __str__(self) -> str:
        extra = "".join(f",{k}={v}" for k, v in self.labels.items() if k != "version")
        return f"{self.name}:{self.version}{extra}"


def parse_app_string(text: str, *, fill_defaults: bool = True, os_name: str | None = None,
                     arch: str | None = None) -> AppRef:
    """Parse `name[:version][,label=value...]`.

    With `fill_defaults` (the default) a missing version becomes `latest` and missing os/arch
    become the host's (or `os_name`/`arch` when given).
    """
    if not isinstance(text, str) or not text.strip():
        raise AppStringError("empty app string: expected name[:version][,label=value...]")
    text = text.strip()
    first_comma, first_colon = text.find(","), text.find(":")
    if text.count(":") > 1:
        raise AppStringError(f'malformed app string "{text}": a colon may appear at most once')
    if first_colon > first_comma > -1:
        raise AppStringError(f'malformed app string "{text}": a colon may appear only right '
                             f"after the app name")
    head, *pairs = text.split(",")
    name, _, version = head.partition(":")
    labels: dict[str, str] = {}
    if first_colon > -1:
        if not version:
            raise AppStringError(f'malformed app string "{text}": empty version after ":"')
        labels["version"] = version
    for pair in pairs:
        label, sep, value = pair.partition("=")
        if not sep or not label or not value:
            raise AppStringError(f'malformed app string "{text}": "{pair}" is not label=value')
        if label in labels:
            raise AppStringError(f'malformed app string "{text}": label "{label}" given twice')
        labels[label] = value
    given = frozenset(labels)
    if fill_defaults:
        labels.setdefault("version", DEFAULT_VERSION)
        labels.setdefault("os", os_name or host_os())
        labels.setdefault("arch", arch or host_arch())
    return AppRef(name, labels, given)


def walk_prefixes(name: str) -> Iterator[str]:
    """`a/b/c`, `a/b`, `a`: the name and each parent path, longest first (the discovery walk)."""
    parts = name.split("/")
    for end in range(len(parts), 0, -1):
        yield "/".join(parts[:end])
