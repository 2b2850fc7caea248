"""The exact client commands a repository page shows (`pyrkt trust`, `pyrkt fetch`)."""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def _flags(base_url: str, name: str, *, insecure_flag: str) -> str:
    parts = urlsplit(base_url)
    flags = []
    if parts.scheme == "http":
        flags.append(insecure_flag)
    domain = name.split("/", 1)[0]
    # A port cannot be part of an image name, so clients take it as an option; it only
    # applies when the names' domain is the host this registry answers on.
    if parts.port and parts.port != DEFAULT_PORTS.get(parts.scheme) and parts.hostname == domain:
        flags.append(f"--port={parts.port}")
    return "".join(f" {flag}" for flag in flags)


def trust_command(base_url: str, name: str) -> str:
    return f"pyrkt trust --prefix {name}{_flags(base_url, name, insecure_flag='--insecure-allow-http')}"


def fetch_command(base_url: str, name: str, version: str | None) -> str:
    flags = _flags(base_url, name, insecure_flag="--insecure-options=http")
    return f"pyrkt fetch{flags} {name}{':' + version if version else ''}"
