"""A live pyrkt registry for tests: real gunicorn on 127.0.0.1, a free port, its own data dir.

Usage from any test folder (tests/ is on the import path):

    from live_registry import LiveRegistry

    with LiveRegistry(tmp_path / "registry") as registry:      # SQLite + local storage
        registry.base_url          # "http://127.0.0.1:PORT"
        registry.token             # an API token of the administrator `admin`
        registry.admin_password    # that administrator's password
        registry.domain            # "127.0.0.1": images are named 127.0.0.1/team/app
        registry.port              # for `actool discover --insecure --port=PORT`
        registry.api("GET", "/repositories")                     # requests.Response, token sent
        registry.cli("token", "create", "admin")                 # `pyrkt-registry ...` on its data dir

Options: `database_url=` (e.g. a PostgreSQL URL; default SQLite in the data dir),
`storage=` a dict of PYRKT_REGISTRY_* settings without the prefix (e.g. from `s3_settings()`),
`env=` more PYRKT_REGISTRY_* variables (e.g. {"PYRKT_REGISTRY_MAX_UPLOAD": "1048576"}),
`workers=` gunicorn workers (2), `dev=True` for Flask's server instead of gunicorn,
`initialise=False` to reuse an already initialised database (a second host of a cluster).
HTTPS: `tls=(cert, key)` serves TLS (base URL https://127.0.0.1[:port], no port for 443) and
`ca_bundle=` is what the helper's own requests trust; `serve_args=` adds `serve` flags (e.g.
`--acme`, `--http-bind`); `ready_timeout=` for an ACME first start.

The registry signs with a cached RSA 4096 key (`signing_key_file()`, generated once into the
test cache) so that tests do not spend seconds generating keys. `stop()` ends only the
process it started.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("PYRKT_TEST_CACHE", REPO_ROOT / ".test-cache"))
ADMIN = "admin"
ADMIN_PASSWORD = "admin-password-for-tests"
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def signing_key_file() -> Path:
    """An armored RSA 4096 secret key generated once per machine (the registry's test key)."""
    # "-rkt1": keys cached before the registry made rkt-readable keys must not be reused.
    target = CACHE_DIR / "registry-signing-key-rkt1.asc"
    if not target.exists():
        from registry.signing import generate_key

        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        key = generate_key("pyrkt test registry <registry@127.0.0.1>")
        tmp = target.with_name(f".{target.name}.{os.getpid()}")
        tmp.write_text(key.armored_secret())
        os.replace(tmp, target)
    return target


def actool_discover(actool: str, registry: LiveRegistry, app: str) -> dict[str, str]:
    """`actool discover` of an app string on this registry: its ACI, ASC and key URLs."""
    result = subprocess.run([actool, "discover", "--insecure", f"--port={registry.port}", app],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"ACI: (\S+), ASC: (\S+)", result.stdout)
    keys = re.search(r"PublicKeys: (\S+)", result.stdout)
    assert found and keys, result.stdout
    return {"aci": found[1], "asc": found[2], "keys": keys[1]}


def s3_settings(endpoint_url: str, bucket: str, access_key: str = "testing",
                secret_key: str = "testing", region: str = "us-east-1",
                presign: bool = False) -> dict[str, str]:
    """`storage=` settings for an S3 bucket (e.g. from tests/s3server.py's S3Endpoint)."""
    return {"STORAGE": "s3", "S3_BUCKET": bucket, "S3_ENDPOINT": endpoint_url,
            "S3_ACCESS_KEY": access_key, "S3_SECRET_KEY": secret_key, "S3_REGION": region,
            "S3_PRESIGN": "1" if presign else "0"}


class LiveRegistry:
    def __init__(self, data_dir: str | os.PathLike[str], *, database_url: str | None = None,
                 storage: dict[str, str] | None = None, env: dict[str, str] | None = None,
                 workers: int = 2, dev: bool = False, initialise: bool = True,
                 port: int | None = None, tls: tuple[Path, Path | None] | None = None,
                 ca_bundle: Path | str | None = None, https: bool | None = None,
                 serve_args: list[str] | None = None, ready_timeout: float = START_TIMEOUT) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.tls = tls
        self.https = bool(tls) if https is None else https
        self.verify: bool | str = str(ca_bundle) if ca_bundle else True
        self.serve_args = list(serve_args or [])
        self.ready_timeout = ready_timeout
        if self.https:
            self.base_url = "https://127.0.0.1" + ("" if self.port == 443 else f":{self.port}")
        else:
            self.base_url = f"http://127.0.0.1:{self.port}"
        self.domain = "127.0.0.1"
        self.workers = workers
        self.dev = dev
        self.initialise = initialise
        self.admin = ADMIN
        self.admin_password = ADMIN_PASSWORD
        self.token: str | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "server.log"
        self.environ = self._environment(database_url, storage or {}, env or {})

    def _environment(self, database_url: str | None, storage: dict[str, str],
                     extra: dict[str, str]) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("PYRKT_REGISTRY_")}
        environ.update({
            "PYRKT_REGISTRY_DATA_DIR": str(self.data_dir),
            "PYRKT_REGISTRY_BASE_URL": self.base_url,
            "PYRKT_REGISTRY_SIGNING_KEY": str(signing_key_file()),
            "PYRKT_REGISTRY_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "PYRKT_REGISTRY_ACCESS_LOG": "-",
        })
        if database_url:
            environ["PYRKT_REGISTRY_DATABASE_URL"] = database_url
        environ.update({f"PYRKT_REGISTRY_{k.upper()}": v for k, v in storage.items()})
        environ.update(extra)
        return environ

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> LiveRegistry:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.initialise:
            self.cli("init")
        self.token = self.cli("token", "create", ADMIN).stdout.strip().splitlines()[-1]
        command = [self.executable(), "serve", "--bind", f"127.0.0.1:{self.port}",
                   "--workers", str(self.workers), *self.serve_args]
        if self.tls:
            command += ["--tls-cert", str(self.tls[0])]
            if self.tls[1]:
                command += ["--tls-key", str(self.tls[1])]
        if self.dev:
            command.append("--dev")
        log = self.log_path.open("ab")
        # A new session: stop() signals the server's process group and nothing else.
        self.process = subprocess.Popen(command, env=self.environ, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"registry exited with {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url("/_health"), timeout=2,
                                verify=self.verify).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"registry did not become ready in {self.ready_timeout}s:\n{self.log()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> LiveRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def executable() -> str:
        found = shutil.which("pyrkt-registry", path=str(Path(sys.executable).parent))
        return found or shutil.which("pyrkt-registry") or "pyrkt-registry"

    def cli(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `pyrkt-registry ARGS` against this registry's configuration."""
        result = subprocess.run([self.executable(), *args], env=self.environ, text=True,
                                capture_output=True, input=input, timeout=300)
        if check and result.returncode != 0:
            raise RuntimeError(f"pyrkt-registry {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result

    def url(self, path: str) -> str:
        return self.base_url + path

    def api(self, method: str, path: str, *, token: str | None = "", **kwargs: Any) -> requests.Response:
        """Call /_api/v1 + path with the admin token (token=None: anonymous)."""
        headers = dict(kwargs.pop("headers", {}) or {})
        chosen = self.token if token == "" else token
        if chosen:
            headers["Authorization"] = f"Bearer {chosen}"
        kwargs.setdefault("verify", self.verify)
        return requests.request(method, self.url("/_api/v1" + path), headers=headers,
                                timeout=60, **kwargs)

    def log(self, tail: int | None = 5000) -> str:
        """The server's output (gunicorn's log and what `serve` printed); the tail by default."""
        try:
            text = self.log_path.read_text(errors="replace")
            return text if tail is None else text[-tail:]
        except FileNotFoundError:
            return "(no log)"

    def push_environ(self) -> dict[str, str]:
        """Environment for a `pyrkt push` subprocess aimed at this registry."""
        return dict(os.environ, PYRKT_TOKEN=self.token or "", PYRKT_REGISTRY_URL=self.base_url)
