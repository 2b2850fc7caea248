"""Client configuration: per-domain settings and credentials read from the config directories.

Two kinds of JSON files, read from each layer of `ConfigDirs` (system, local, user; a later layer
overrides an earlier one for the same domain), files in name order:

`auth.d/*.json` — rkt's format, headers sent only to the listed domains:

    {"rktKind": "auth", "rktVersion": "v1", "domains": ["example.com"],
     "type": "basic", "credentials": {"user": "alice", "password": "secret"}}
    {"rktKind": "auth", "rktVersion": "v1", "domains": ["example.com"],
     "type": "oauth", "credentials": {"token": "abc"}}         ("bearer" is accepted too)

`domains.d/*.json` — how to reach a domain (a port for testing, a private CA, insecure options):

    {"pyrktKind": "domain", "pyrktVersion": "v1", "domains": ["registry.test"],
     "port": 8443, "caBundle": "/etc/pyrkt/registry-ca.pem", "insecureOptions": ["http"]}
    {"pyrktKind": "domain", "pyrktVersion": "v1", "domains": ["example.org"],
     "mirror": "https://mirror.internal"}       (a pull-through mirror answers for the domain)

`"pyrktKind"`/`"rktKind"` and `"pyrktVersion"`/`"rktVersion"` are interchangeable.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .dirs import ConfigDirs
from .errors import ClientConfigError
from .insecure import InsecureOptions


@dataclass(frozen=True)
class DomainSettings:
    port: int | None = None
    ca_bundle: Path | None = None
    insecure: InsecureOptions = field(default_factory=InsecureOptions)
    # A registry that answers discovery for this domain on its behalf (a pull-through mirror):
    # discovery pages are asked at `{mirror}/{name}?ac-discovery=1` instead of the domain.
    mirror: str | None = None


@dataclass
class ClientConfig:
    """Everything the HTTP side of the client needs, merged from files and flags."""

    domains: dict[str, DomainSettings] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # domain -> headers

    @classmethod
    def load(cls, dirs: ConfigDirs) -> ClientConfig:
        config = cls()
        for layer in map(Path, dirs.layers()):
            for path, doc in _documents(layer / "domains.d", "domain"):
                settings = _domain_settings(path, doc, layer)
                for domain in _domain_list(path, doc):
                    config.domains[domain] = settings
            for path, doc in _documents(layer / "auth.d", "auth"):
                headers = _auth_headers(path, doc)
                for domain in _domain_list(path, doc):
                    config.headers[domain] = headers
        return config

    def for_host(self, host: str) -> DomainSettings:
        return self.domains.get(host.lower(), DomainSettings())

    def headers_for(self, host: str) -> dict[str, str]:
        return dict(self.headers.get(host.lower(), {}))


def _documents(folder: Path, kind: str) -> list[tuple[Path, dict[str, Any]]]:
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ClientConfigError(f"{path}: not valid JSON ({error})") from error
        if not isinstance(doc, dict):
            raise ClientConfigError(f"{path}: expected a JSON object")
        got_kind = doc.get("pyrktKind", doc.get("rktKind"))
        if got_kind != kind:
            raise ClientConfigError(f'{path}: expected "rktKind": "{kind}", got {got_kind!r}')
        version = doc.get("pyrktVersion", doc.get("rktVersion"))
        if version != "v1":
            raise ClientConfigError(f'{path}: unsupported version {version!r} (only "v1")')
        found.append((path, doc))
    return found


def _domain_list(path: Path, doc: dict[str, Any]) -> list[str]:
    domains = doc.get("domains")
    if not isinstance(domains, list) or not domains or not all(
            isinstance(d, str) and d for d in domains):
        raise ClientConfigError(f'{path}: "domains" must be a non-empty list of domain names')
    return [d.lower() for d in domains]


def _domain_settings(path: Path, doc: dict[str, Any], layer: Path) -> DomainSettings:
    port = doc.get("port")
    if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
        raise ClientConfigError(f'{path}: "port" must be a number within 1..65535')
    ca = doc.get("caBundle")
    if ca is not None:
        if not isinstance(ca, str) or not ca:
            raise ClientConfigError(f'{path}: "caBundle" must be a path')
        ca_path = Path(ca) if Path(ca).is_absolute() else layer / ca
        if not ca_path.is_file():
            raise ClientConfigError(f'{path}: "caBundle" {ca_path} does not exist')
    else:
        ca_path = None
    insecure = doc.get("insecureOptions", [])
    if not isinstance(insecure, list):
        raise ClientConfigError(f'{path}: "insecureOptions" must be a list such as ["tls"]')
    try:
        options = InsecureOptions.parse(",".join(insecure) or "none")
    except ValueError as error:
        raise ClientConfigError(f"{path}: {error}") from error
    mirror = doc.get("mirror")
    if mirror is not None:
        parts = urlsplit(mirror) if isinstance(mirror, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientConfigError(f'{path}: "mirror" must be the http(s) URL of a registry, '
                                    'e.g. "https://mirror.example.com"')
        mirror = mirror.rstrip("/")
    return DomainSettings(port, ca_path, options, mirror)


def _auth_headers(path: Path, doc: dict[str, Any]) -> dict[str, str]:
    kind = doc.get("type")
    creds = doc.get("credentials")
    if not isinstance(creds, dict):
        raise ClientConfigError(f'{path}: "credentials" must be an object')
    if kind == "basic":
        user, password = creds.get("user"), creds.get("password")
        if not isinstance(user, str) or not isinstance(password, str):
            raise ClientConfigError(f'{path}: basic credentials need "user" and "password"')
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}
    if kind in ("oauth", "bearer"):
        bearer = creds.get("token")
        if not isinstance(bearer, str) or not bearer:
            raise ClientConfigError(f'{path}: {kind} credentials need a "token"')
        return {"Authorization": f"Bearer {bearer}"}
    raise ClientConfigError(f'{path}: unknown auth type {kind!r} (basic, oauth or bearer)')
