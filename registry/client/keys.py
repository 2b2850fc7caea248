"""Getting public keys to trust: from a file, a URL, or the prefix's ac-discovery-pubkeys tags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import requests

from registry.discovery import DiscoveryError, discover_pubkeys, parse_app_string
from registry.signing import PublicKey, SigningError, read_public_keys

from .download import get_small
from .errors import FetchError, TrustError
from .insecure import InsecureOptions
from .session import ClientSession


@dataclass(frozen=True)
class FoundKey:
    key: PublicKey
    source: str  # the file or URL it came from


def _parse(data: bytes, source: str) -> list[FoundKey]:
    try:
        return [FoundKey(key, source) for key in read_public_keys(data)]
    except SigningError as error:
        raise TrustError(f"{source}: {error}") from None


def keys_from_location(location: str, session: requests.Session,
                       insecure: InsecureOptions) -> list[FoundKey]:
    """Keys from a local file or an https (http only when allowed) URL."""
    if location.startswith(("https://", "http://")):
        try:
            answer = get_small(session, location, insecure, "the public key")
        except FetchError as error:
            raise TrustError(str(error)) from None
        if answer.status != 200:
            raise TrustError(f"cannot get the public key at {location}: HTTP {answer.status}")
        return _parse(answer.body, location)
    path = Path(location.removeprefix("file://"))
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TrustError(f"cannot read the key file {path}: {error.strerror or error}") from None
    return _parse(data, str(path))


def fetch_keys(prefix: str | None, locations: list[str], session: requests.Session, *,
               insecure: InsecureOptions, port: int | None = None) -> list[FoundKey]:
    """Keys from `locations`, or (none given) from the prefix's ac-discovery-pubkeys URLs."""
    if locations:
        found: list[FoundKey] = []
        for location in locations:
            found += keys_from_location(location, session, insecure)
        return found
    if not prefix:
        raise TrustError("give a key file or URL, or --prefix to discover the keys")
    domain = prefix.split("/", 1)[0]
    mirror = None
    if isinstance(session, ClientSession):
        insecure = insecure | session.insecure_for(domain)
        mirror = session.mirror_for(domain)
        if port is None:
            port = session.port_for(domain)
    try:
        app = parse_app_string(prefix)
        result = discover_pubkeys(app, session=session, insecure_tls=insecure.skip_tls_check,
                                  allow_http=insecure.allow_http, port=port, mirror=mirror)
    except DiscoveryError as error:
        raise TrustError(f"cannot discover keys for prefix {prefix}: {error}") from None
    found = []
    for url in result.pubkeys:
        found += keys_from_location(url, session, insecure)
    return found
