"""The SSL context of gunicorn's workers, re-read when the certificate files change.

gunicorn asks its `ssl_context` hook for a context on every new connection. Building one means
parsing the key and chain, so the context is kept and rebuilt only when a file's identity
(inode, size, mtime) changes: a certificate renewed by ACME, swapped by an operator or by
certbot is served from the next handshake on, while connections already open keep the one they
started with — nothing is dropped and no worker restarts (SIGHUP still works: gunicorn then
replaces its workers gracefully, letting in-flight requests finish).

A pair caught half-replaced (new certificate, old key) fails to load; the previous context is
kept and the failure logged once, so a swap never takes the listener down.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("gunicorn.error")

_lock = threading.Lock()
_cache: dict[tuple[str, str | None], tuple[tuple[Any, ...], ssl.SSLContext]] = {}
_failed: set[tuple[Any, ...]] = set()


def _identity(path: str | None) -> tuple[Any, ...]:
    if not path:
        return ()
    try:
        st = os.stat(path)
    except OSError as error:
        return ("missing", error.errno)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def reloading_context(certfile: str, keyfile: str | None,
                      build: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """The context for `certfile`/`keyfile`, rebuilt by `build()` when either file changed."""
    key = (certfile, keyfile)
    stamp = (_identity(certfile), _identity(keyfile))
    cached = _cache.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            context = build()
        except (OSError, ssl.SSLError, ValueError) as error:
            if cached is None:
                raise  # nothing to fall back to: gunicorn reports it
            if stamp not in _failed:
                _failed.add(stamp)
                log.warning("TLS: cannot load %s (%s); still serving the previous certificate",
                            certfile, error)
            return cached[1]
        if cached is not None:
            log.info("TLS: certificate %s changed on disk; new connections use the new one",
                     certfile)
        _cache[key] = (stamp, context)
        return context


def server_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """TLS 1.2+ with the certificate; what the hook builds when gunicorn's factory is not used."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile=certfile, keyfile=keyfile)
    return context
