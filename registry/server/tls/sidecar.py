"""The process `pyrkt-registry serve` runs beside gunicorn for what workers do not do:

- a plain-HTTP listener (`http_bind`) that redirects every request to HTTPS and answers ACME
  http-01 challenges from the shared database, so any host can answer the CA;
- with ACME, the renewal loop (`manager.check` every `acme_check_interval` seconds).

It reads the same PYRKT_REGISTRY_* settings as the workers and ends when the server does
(SIGTERM from the parent's death, see `serve`).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from registry.server.config import RegistryConfig
from registry.server.db import make_engine, make_session_factory

from . import manager, store

CHALLENGE_PATH = "/.well-known/acme-challenge/"


def https_location(config: RegistryConfig, host_header: str | None, target: str) -> str:
    """Where a plain-HTTP request goes: the same host and path over HTTPS. A host the registry
    does not serve is sent to the base URL instead (no open redirect)."""
    base = urlsplit(config.base_url)
    https_port = base.port if base.scheme == "https" and base.port else None
    host = (host_header or "").strip().lower()
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    known = {d.lower() for d in config.domains} | {(base.hostname or "").lower()}
    if name.strip("[]") not in known:
        name = base.hostname or "127.0.0.1"
    netloc = f"{name}:{https_port}" if https_port else name
    return f"https://{netloc}{target if target.startswith('/') else '/' + target}"


def make_handler(config: RegistryConfig, sessions: manager.Sessions) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "pyrkt-registry"
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self) -> None:
            path = self.path.split("?", 1)[0]
            if path.startswith(CHALLENGE_PATH) and self.command in ("GET", "HEAD"):
                token = path[len(CHALLENGE_PATH):]
                with sessions() as session:
                    value = store.get(session, store.CHALLENGE_PREFIX + token) if token else None
                if value is None:
                    self._answer(404, b"no such challenge\n", {"Content-Type": "text/plain"})
                else:
                    self._answer(200, value.encode(), {"Content-Type": "text/plain"})
                return
            # Request bodies are not read: the client repeats the request over HTTPS.
            location = https_location(config, self.headers.get("Host"), self.path)
            self.close_connection = True
            self._answer(301 if self.command in ("GET", "HEAD") else 308,
                         f"moved to {location}\n".encode(),
                         {"Location": location, "Content-Type": "text/plain",
                          "Connection": "close"})

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            logging.getLogger("pyrkt.tls.http").debug(format, *args)

    return Handler


class _Listener(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # One line in the log (e.g. the database unreachable for a challenge), no traceback.
        error = sys.exc_info()[1]
        logging.warning("TLS: plain-HTTP request from %s failed: %s", client_address[0],
                        str(error).splitlines()[0] if str(error) else type(error).__name__)


def http_listener(config: RegistryConfig, sessions: manager.Sessions) -> ThreadingHTTPServer:
    assert config.tls.http_bind
    host, _, port = config.tls.http_bind.rpartition(":")
    server = _Listener((host.strip("[]"), int(port)), make_handler(config, sessions))
    return server


def main() -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S %z")
    config = RegistryConfig.load()
    engine = make_engine(config.database_url)
    sessions = make_session_factory(engine)
    stop = threading.Event()

    def _stop(_signum: int, _frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    server = None
    if config.tls.http_bind:
        server = http_listener(config, sessions)
        threading.Thread(target=server.serve_forever, name="http-listener", daemon=True).start()
        logging.info("TLS: plain HTTP on %s redirects to HTTPS and answers ACME challenges",
                     config.tls.http_bind)
    try:
        while not stop.is_set():
            if config.tls.acme:
                try:
                    manager.check(config, sessions)
                except Exception as error:  # noqa: BLE001 - the loop must survive, say why once
                    logging.error("TLS: renewal check failed: %s", error)
                stop.wait(config.tls.acme_check_interval)
            else:
                stop.wait(3600)
    finally:
        if server is not None:
            server.shutdown()
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
