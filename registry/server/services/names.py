"""Rules for names and versions that the upload API, discovery and the UI share."""

from __future__ import annotations

import re

from .errors import BadRequest

# appc's AC Identifier (spec/types.md).
AC_IDENTIFIER_RE = re.compile(r"^[a-z0-9]+([-._~/][a-z0-9]+)*$")
# Versions end up in URLs (the discovery template puts {version} in a path segment).
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$")
MAX_NAME_LENGTH = 512


def is_ac_identifier(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and AC_IDENTIFIER_RE.match(name) is not None


def check_hosted_name(name: str, domains: tuple[str, ...]) -> str:
    """`name` if it is an AC identifier whose first segment is a hosted domain."""
    if not is_ac_identifier(name):
        raise BadRequest(f"bad image name {name!r}: not an AC identifier "
                         "(lower-case letters, digits and -._~/ separators)", code="bad-name")
    domain, _, rest = name.partition("/")
    if domain not in domains:
        raise BadRequest(f"name {name!r} is not under a domain this registry serves "
                         f"({', '.join(domains)})", code="foreign-domain")
    if not rest:
        raise BadRequest(f"name {name!r} is only a domain; add a path such as "
                         f"{domain}/team/app", code="bad-name")
    return name


def check_version(version: str) -> str:
    if version == "latest":
        raise BadRequest("'latest' is not a version: the registry resolves it; "
                         "mark a version as latest instead", code="bad-version")
    if not VERSION_RE.match(version):
        raise BadRequest(f"bad version {version!r}: use up to 128 letters, digits and ._+~-, "
                         "starting with a letter or digit", code="bad-version")
    return version
