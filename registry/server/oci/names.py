"""OCI repository names <-> the registry's appc names, tags and digests.

The mapping: an OCI name whose first component is a domain this registry hosts is that appc
name verbatim (`example.com/team/app`); any other name lives under the registry's default
domain, its first configured one (`team/app` -> `127.0.0.1/team/app`). Going back, names
under the default domain lose it again, so `/v2/_catalog` shows what `docker pull` needs.
An OCI name that is not also an AC Identifier (OCI allows `a__b` and `a--b`, appc does not)
is refused with NAME_INVALID rather than silently renamed.
"""

from __future__ import annotations

import re

from registry.server.services.names import is_ac_identifier

from .errors import OciError

# The distribution spec's name and tag grammars.
OCI_NAME_RE = re.compile(
    r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$"
)
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_OCI_NAME = 255


def appc_name(oci_name: str, domains: tuple[str, ...]) -> str:
    """The registry's repository name for an OCI name; NAME_INVALID if there is none."""
    if len(oci_name) > MAX_OCI_NAME or not OCI_NAME_RE.match(oci_name):
        raise OciError(f"invalid repository name {oci_name!r}", code="NAME_INVALID")
    first, _, rest = oci_name.partition("/")
    name = oci_name if first in domains and rest else f"{domains[0]}/{oci_name}"
    if not is_ac_identifier(name):
        raise OciError(f"repository name {oci_name!r} cannot be an appc name (no '__' or '--')",
                       code="NAME_INVALID")
    return name


def oci_name(name: str, domains: tuple[str, ...]) -> str:
    """The OCI name under which an appc repository name is reachable through /v2/."""
    first, _, rest = name.partition("/")
    return rest if first == domains[0] and rest else name


def is_digest(reference: str) -> bool:
    return DIGEST_RE.match(reference) is not None


def check_digest(digest: str | None) -> str:
    """A sha256 digest as the spec writes it, else DIGEST_INVALID (the only algorithm served)."""
    if digest is None or not is_digest(digest):
        raise OciError(f"bad digest {digest!r}: expected sha256:<64 lower-case hex>",
                       code="DIGEST_INVALID")
    return digest


def check_reference(reference: str) -> str:
    """A tag or a digest, else MANIFEST_INVALID (a reference that could never exist)."""
    if is_digest(reference) or TAG_RE.match(reference):
        return reference
    raise OciError(f"bad reference {reference!r}: a tag ([A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}) "
                   "or sha256:<hex>", code="MANIFEST_INVALID")
