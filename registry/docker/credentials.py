"""Registry credentials from Docker's own config file (`~/.docker/config.json`)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from registry.docker.reference import DOCKER_HUB_INDEX

_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", DOCKER_HUB_INDEX)


def docker_config_path() -> Path:
    """`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, as the docker CLI looks."""
    directory = os.environ.get("DOCKER_CONFIG")
    return Path(directory) / "config.json" if directory else Path.home() / ".docker" / "config.json"


def _normalize_key(key: str) -> str:
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key.split("/", 1)[0]


def credentials_for(registry: str, config_path: Path | None = None) -> tuple[str, str] | None:
    """(username, password) stored for `registry` (host[:port]), or None.

    Only inline `auths` entries are read; credential helpers (`credsStore`, `credHelpers`) are
    external programs and are not run.
    """
    path = config_path or docker_config_path()
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    auths = document.get("auths") if isinstance(document, dict) else None
    if not isinstance(auths, dict):
        return None
    wanted = {registry} | (set(map(_normalize_key, _HUB_KEYS)) if registry == DOCKER_HUB_INDEX
                           else set())
    for key, entry in auths.items():
        if _normalize_key(str(key)) not in wanted or not isinstance(entry, dict):
            continue
        if entry.get("username") and entry.get("password"):
            return str(entry["username"]), str(entry["password"])
        encoded = entry.get("auth")
        if isinstance(encoded, str) and encoded:
            try:
                user, _, password = base64.b64decode(encoded).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
            if user:
                return user, password
    return None
