"""Rules for names and versions that the upload API, discovery and the UI share."""

from __future__ import annotations

import re

from registry.aci import MAX_NAME_LENGTH, ManifestError, check_image_name
from registry.aci import check_version as check_version_rule
from registry.aci.names import VERSION

from .errors import BadRequest

# The rules are the format core's (registry.aci.names), shared with the client and builder;
# these are the server's views of them.
VERSION_RE = re.compile(rf"(?:{VERSION.pattern})\Z")  # .match() must see the whole string
__all__ = ["MAX_NAME_LENGTH", "VERSION_RE", "check_hosted_name", "check_version",
           "is_ac_identifier"]


def is_ac_identifier(name: str) -> bool:
    try:
        check_image_name(name)
    except ManifestError:
        return False
    return True


def check_hosted_name(name: str, domains: tuple[str, ...]) -> str:
    """`name` if it is an AC identifier whose first segment is a hosted domain."""
    try:
        check_image_name(name)
    except ManifestError as error:
        raise BadRequest(str(error), code="bad-name") from None
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
    try:
        return check_version_rule(version)
    except ManifestError as error:
        raise BadRequest(str(error), code="bad-version") from None
