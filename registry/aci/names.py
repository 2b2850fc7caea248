"""Scalar value rules of appc: identifiers, names, versions, quantities, dates, URLs, hashes."""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from urllib.parse import urlparse

from registry.aci.errors import ManifestError

AC_IDENTIFIER = re.compile(r"[a-z0-9]+(?:[-._~/][a-z0-9]+)*")
# As appc's Go code checks an AC Name (types.ACName.assertValid: only a-z 0-9 -, no - at either
# end), not its stricter ValidACName regex: docker2aci names a volume at /var/lib/redis
# "volume--var-lib-redis", and rkt and actool accept it.
AC_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9.-]*")
# Semantic Versioning 2.0.0 (the Go spec uses coreos/go-semver, which follows it).
_SEMVER = (
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
IMAGE_ID = re.compile(r"sha512-[0-9a-f]+")
# Kubernetes-style resource quantities, as appc's resource package parses them.
_QUANTITY = r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+)?"
_RFC3339 = (
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    """The long patterns above, compiled on first use: compiling SEMVER alone costs ~1 ms, paid
    otherwise by every command that imports this module (`pyrkt run` among them)."""
    return re.compile(pattern)


# What a registry, a store and a URL can hold (the rules every part applies to an image it
# accepts, whoever made it): image names are AC Identifiers of at most MAX_NAME_LENGTH
# characters; versions become one path segment of a URL (the discovery template's {version})
# and of store paths, so they are short, start with a letter or digit and hold no `/`.
# `_` is allowed after the first character: Docker tags (docker2aci's versions) use it.
MAX_NAME_LENGTH = 512
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~_-]{0,127}")

# The os/arch pairs appc knows (schema/types/labels.go ValidOSArch).
VALID_OS_ARCH: dict[str, tuple[str, ...]] = {
    "linux": ("amd64", "i386", "aarch64", "aarch64_be", "armv6l", "armv7l", "armv7b", "ppc64",
              "ppc64le", "s390x"),
    "freebsd": ("amd64", "i386", "arm"),
    "darwin": ("x86_64", "i386"),
}


def check_identifier(value: object, field: str) -> str:
    """An AC Identifier: image, label, annotation, isolator and dependency names."""
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{field}: must be a non-empty AC Identifier")
    if not AC_IDENTIFIER.fullmatch(value):
        raise ManifestError(
            f"{field}: {value!r} is not an AC Identifier (lower case letters and digits,"
            " separated by single - . _ ~ /)")
    return value


def check_name(value: object, field: str) -> str:
    """An AC Name: mount point, port, pod app and volume names."""
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{field}: must be a non-empty AC Name")
    if not AC_NAME.fullmatch(value):
        raise ManifestError(
            f"{field}: {value!r} is not an AC Name (lower case letters, digits and -,"
            " starting and ending with a letter or digit)")
    return value


def check_semver(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{field}: must be set (a semantic version such as 0.8.11)")
    if not _compiled(_SEMVER).fullmatch(value):
        raise ManifestError(f"{field}: {value!r} is not a semantic version")
    return value


def check_image_id(value: object, field: str) -> str:
    if not isinstance(value, str) or not IMAGE_ID.fullmatch(value):
        raise ManifestError(f"{field}: {value!r} is not an image ID (sha512-<hex>)")
    return value


def parse_quantity(value: object, field: str) -> float:
    """The numeric value of a quantity such as `500m`, `512M`, `1Gi` or a bare number."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ManifestError(f"{field}: {value!r} is not a quantity")
    text = str(value)
    match = _compiled(_QUANTITY).fullmatch(text)
    if not match:
        raise ManifestError(f"{field}: {text!r} is not a quantity (e.g. 500m, 512M, 1Gi)")
    number, suffix = float(match.group(1)), match.group(2) or ""
    return number * _suffix_scale(suffix)


def _suffix_scale(suffix: str) -> float:
    decimal = {"": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
    binary = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
    if suffix in decimal:
        return decimal[suffix]
    if suffix in binary:
        return float(binary[suffix])
    return 10.0 ** int(suffix[1:])


def check_date(value: str, field: str) -> None:
    if not _compiled(_RFC3339).fullmatch(value):
        raise ManifestError(f"{field}: {value!r} is not an RFC 3339 date")
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ManifestError(f"{field}: {value!r} is not an RFC 3339 date") from None


def check_url(value: str, field: str) -> None:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ManifestError(f"{field}: {value!r} is not an http(s) URL")


def check_os_arch(labels: dict[str, str], field: str) -> None:
    """If `os` is given it must be known and `arch` (if given) valid for it."""
    os_name = labels.get("os")
    if os_name is None:
        return
    if os_name not in VALID_OS_ARCH:
        raise ManifestError(
            f'{field}: bad os "{os_name}" (must be one of: {", ".join(sorted(VALID_OS_ARCH))})')
    arch = labels.get("arch")
    if arch is not None and arch not in VALID_OS_ARCH[os_name]:
        raise ManifestError(
            f'{field}: bad arch "{arch}" for os "{os_name}"'
            f' (must be one of: {", ".join(VALID_OS_ARCH[os_name])})')


def check_image_name(value: object, field: str = "name") -> str:
    """An image name a registry can host and a client can put in a URL: an AC Identifier
    (so no `..` and no empty segment) of at most MAX_NAME_LENGTH characters."""
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{field}: must be a non-empty AC Identifier", reason="bad-name")
    if len(value) > MAX_NAME_LENGTH or not AC_IDENTIFIER.fullmatch(value):
        raise ManifestError(
            f"bad image name {value[:80]!r}: not an AC identifier (lower-case letters, digits"
            f" and -._~/ separators, at most {MAX_NAME_LENGTH} characters)", reason="bad-name")
    return value


def check_version(value: object, field: str = "version") -> str:
    """A version label a registry can serve (one URL path segment): up to 128 letters,
    digits and ._+~-, starting with a letter or digit."""
    if not isinstance(value, str) or not VERSION.fullmatch(value):
        raise ManifestError(f"bad {field} {value!r}: use up to 128 letters, digits and ._+~_-, "
                            "starting with a letter or digit", reason="bad-version")
    return value


def check_hostable(name: str, labels: dict[str, str]) -> None:
    """The image's name and version label (if any) by the rules above: what the registry's
    upload, the client's fetch, push and store, and the builder all check."""
    check_image_name(name)
    version = labels.get("version")
    if version is not None:
        check_version(version, "version label")
