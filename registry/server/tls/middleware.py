"""WSGI middleware for requests that arrived over HTTPS.

- `Strict-Transport-Security` on every HTTPS response (browsers then never try plain HTTP for
  the host; no includeSubDomains: other hosts of the domain are not the registry's to decide).
- Large blocks for file downloads: sendfile(2) cannot apply under TLS (the bytes must pass
  through OpenSSL in this process), so gunicorn iterates the file wrapper; with werkzeug's
  8 KiB default every block is a Python round trip and a TLS record. 1 MiB blocks keep the
  overhead small and memory flat (one block per download in flight).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

TLS_BLOCK_SIZE = 1024 * 1024

_wrappers: dict[type[Any], type[Any]] = {}


def _large_block_wrapper(original: type[Any]) -> type[Any]:
    found = _wrappers.get(original)
    if found is None:
        def __init__(self: Any, filelike: Any, blksize: int = 8192) -> None:
            original.__init__(self, filelike, max(blksize, TLS_BLOCK_SIZE))

        # A subclass, not a function: servers test `isinstance(body, environ[...])`.
        found = type(f"TLS{original.__name__}", (original,), {"__init__": __init__})
        _wrappers[original] = found
    return found


class HTTPSResponses:
    def __init__(self, app: Callable[..., Iterable[bytes]], hsts_max_age: int) -> None:
        self.app = app
        self.hsts = f"max-age={hsts_max_age}" if hsts_max_age > 0 else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("wsgi.url_scheme") != "https":
            return self.app(environ, start_response)
        wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(wrapper, type):
            environ["wsgi.file_wrapper"] = _large_block_wrapper(wrapper)
        if self.hsts is None:
            return self.app(environ, start_response)
        hsts = self.hsts

        def with_hsts(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if not any(name.lower() == "strict-transport-security" for name, _ in headers):
                headers = [*headers, ("Strict-Transport-Security", hsts)]
            return start_response(status, headers, exc_info)

        return self.app(environ, with_hsts)
