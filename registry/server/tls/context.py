"""The SSL context of gunicorn's workers, re-read when the certificate files change.

gunicorn asks its `ssl_context` hook for a context on every new connection (gthread workers) or
once per worker (gevent). The registry keeps ONE context per worker and, when a file's identity
(inode, size, mtime) changes, loads the new pair into it in place: every handshake from then on
presents the new certificate, while connections already open keep the one they started with
(OpenSSL copies it into each connection) — nothing is dropped and no worker restarts. The
per-connection call checks the files; `watch()` (started by gunicorn's post_worker_init hook)
checks them every few seconds, for worker classes that build the context only once. SIGHUP
still works as gunicorn's graceful reload.

A new pair is first loaded into a throwaway context: a pair caught half-replaced (new
certificate, old key) fails there, the current certificate stays and the failure is logged
once, so a swap never takes the listener down.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("gunicorn.error")

WATCH_INTERVAL = 2.0

_lock = threading.Lock()
_cache: dict[tuple[str, str | None], list[Any]] = {}  # key -> [stamp, context]
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
    """This worker's context for `certfile`/`keyfile`, brought up to date with the files."""
    key = (certfile, keyfile)
    stamp = (_identity(certfile), _identity(keyfile))
    entry = _cache.get(key)
    if entry is not None and entry[0] == stamp:
        return entry[1]
    with _lock:
        entry = _cache.get(key)
        if entry is None:
            context = build()  # nothing to fall back to: gunicorn reports a failure
            _cache[key] = [stamp, context]
            return context
        if entry[0] == stamp:
            return entry[1]
        try:
            build()  # the new pair, checked on a throwaway context first
            entry[1].load_cert_chain(certfile=certfile, keyfile=keyfile)
        except (OSError, ssl.SSLError, ValueError) as error:
            if stamp not in _failed:
                _failed.add(stamp)
                log.warning("TLS: cannot load %s (%s); still serving the previous certificate",
                            certfile, error)
            return entry[1]
        entry[0] = stamp
        log.info("TLS: certificate %s changed on disk; new connections use the new one",
                 certfile)
        return entry[1]


def watch(refresh: Callable[[], object], interval: float = WATCH_INTERVAL) -> threading.Thread:
    """Call `refresh()` (which ends in reloading_context) every `interval` seconds."""
    def loop() -> None:
        stop = threading.Event()
        while not stop.wait(interval):
            try:
                refresh()
            except Exception as error:  # noqa: BLE001 - a watcher must not die; say why
                log.warning("TLS: checking the certificate files failed: %s", error)

    thread = threading.Thread(target=loop, name="tls-certificate-watch", daemon=True)
    thread.start()
    return thread


def server_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """TLS 1.2+ with the certificate; what the hook builds when gunicorn's factory is not used."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile=certfile, keyfile=keyfile)
    return context
