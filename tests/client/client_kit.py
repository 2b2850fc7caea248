"""Helpers of the client tests: images, keys, a configured CLI, and a file server with HTTP caching.

`FileServer` is a small http.server handler (no pyrkt code) that serves a folder with ETag /
If-None-Match, Cache-Control max-age, Range requests, and can misbehave on purpose: drop the
connection after N bytes, answer 202 for a signature a few times.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from registry.aci import write_aci
from registry.cli.main import pyrkt
from registry.signing import SecretKey, sign_detached


def manifest(name: str, labels: dict[str, str] | None = None, *,
             dependencies: list[dict[str, Any]] | None = None,
             path_whitelist: list[str] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
                           "labels": [{"name": k, "value": v} for k, v in (labels or {}).items()]}
    if dependencies:
        doc["dependencies"] = dependencies
    if path_whitelist:
        doc["pathWhitelist"] = path_whitelist
    return doc


def build_aci(path: Path, name: str, labels: dict[str, str] | None = None,
              files: dict[str, bytes | str] | None = None, *, compression: str = "gzip",
              key: SecretKey | None = None, **extra: Any) -> str:
    """Write an ACI (and `path.asc` when a key is given); returns its image ID."""
    root = path.with_name(path.name + ".rootfs")
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in (files or {"hello.txt": f"hello from {name}\n"}).items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_id = write_aci(manifest(name, labels, **extra), root, path, compression=compression)
    if key is not None:
        sign(key, path)
    return image_id


def sign(key: SecretKey, path: Path) -> Path:
    asc = path.with_name(path.name + ".asc")
    asc.write_bytes(sign_detached(key, path))
    return asc


def host_labels(version: str = "1.0.0") -> dict[str, str]:
    from registry.discovery import host_arch, host_os

    return {"version": version, "os": host_os(), "arch": host_arch()}


def discovery_page(*tags: tuple[str, str, str]) -> str:
    """HTML with meta tags: each tag is (kind, prefix, url)."""
    metas = "\n".join(f'    <meta name="{kind}" content="{prefix} {url}">' for kind, prefix, url in tags)
    return f"<!DOCTYPE html>\n<html><head><title>t</title>\n{metas}\n</head><body>hi</body></html>\n"


@dataclass
class ClientEnv:
    """Separate store and configuration directories for one test, and a CLI runner on them."""

    root: Path
    extra: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for sub in ("store", "system", "local", "user"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    @property
    def store_dir(self) -> Path:
        return self.root / "store"

    @property
    def config_layer(self) -> Path:
        """The layer `pyrkt trust` writes to (local for root, user otherwise)."""
        return self.root / ("local" if os.geteuid() == 0 else "user")

    def flags(self) -> list[str]:
        return ["--dir", str(self.store_dir), "--system-config", str(self.root / "system"),
                "--local-config", str(self.root / "local"), "--user-config",
                str(self.root / "user"), *self.extra]

    def dirs(self):  # type: ignore[no-untyped-def]
        from registry.client import ConfigDirs

        return ConfigDirs(self.root / "system", self.root / "local", self.root / "user")

    def store(self):  # type: ignore[no-untyped-def]
        from registry.client import ImageStore

        return ImageStore(self.store_dir)

    def run(self, command: Sequence[str], *args: str, input: str | None = None) -> Result:
        """`pyrkt COMMAND... <global flags> ARGS...` in-process."""
        return CliRunner().invoke(pyrkt, [*command, *self.flags(), *args], input=input,
                                  catch_exceptions=False)

    def trust_key(self, key: SecretKey, prefix: str | None) -> None:
        path = self.root / f"key-{key.fingerprint}.asc"
        path.write_text(key.armored_public())
        scope = ["--prefix", prefix] if prefix else ["--root"]
        result = self.run(["trust"], *scope, "--skip-fingerprint-review", str(path))
        assert result.exit_code == 0, result.output

    def domain_config(self, domain: str, **settings: Any) -> None:
        import json

        folder = self.root / "local" / "domains.d"
        folder.mkdir(parents=True, exist_ok=True)
        doc = {"pyrktKind": "domain", "pyrktVersion": "v1", "domains": [domain], **settings}
        (folder / f"{domain}.json").write_text(json.dumps(doc))

    def snapshot(self) -> dict[str, bytes]:
        """Everything in the store except the index's journal files and scratch space."""
        files = {}
        for path in sorted(self.store_dir.rglob("*")):
            rel = path.relative_to(self.store_dir).as_posix()
            if path.is_file() and not rel.startswith(("tmp/", "locks/")) and \
                    not rel.startswith("index.db"):
                files[rel] = path.read_bytes()
        files["(images)"] = repr([(i.id, i.name) for i in self.store().list()]).encode()
        return files


# a file server with HTTP caching, ranges and faults ----------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        site = self.server.site
        path = self.path.split("?", 1)[0]
        site.requests.append((self.path, dict(self.headers)))
        if path in site.accepted_first and site.accepted_first[path] > 0:
            site.accepted_first[path] -= 1
            self.send_response(202)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        target = (site.root / path.lstrip("/")).resolve()
        if not target.is_file() or not target.is_relative_to(site.root.resolve()):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = target.read_bytes()
        etag = '"' + hashlib.sha256(data).hexdigest()[:20] + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self._cache_headers()
            self.end_headers()
            return
        start = 0
        wanted = self.headers.get("Range")
        if wanted and self.headers.get("If-Range", etag) == etag and wanted.startswith("bytes="):
            start = int(wanted[6:].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(data) - start))
        self._cache_headers()
        self.end_headers()
        body = data[start:]
        cut = site.drop_after.pop(path, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def _cache_headers(self) -> None:
        if self.server.site.max_age is not None:
            self.send_header("Cache-Control", f"max-age={self.server.site.max_age}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: FileServer


class FileServer:
    """Serve `root` over plain HTTP on 127.0.0.1 with ETags, Range and optional faults."""

    def __init__(self, root: Path, *, max_age: int | None = None) -> None:
        self.root = root
        self.max_age = max_age
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.drop_after: dict[str, int] = {}  # path -> bytes sent before the connection drops
        self.accepted_first: dict[str, int] = {}  # path -> how many 202 answers first
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.site = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __exit__(self, *exc: object) -> None:
        self.stop()
