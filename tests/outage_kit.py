"""Backends a test may break on purpose: its OWN PostgreSQL cluster (initdb + pg_ctl in a
temporary folder, on a free port; never the shared server) and its own moto S3 server that
can be frozen (SIGSTOP), thawed, killed and restarted on the same port.

    with ThrowawayPostgres(tmp_path / "pg") as pg:      # pg.url: postgresql+psycopg://...
        pg.stop(); pg.start()
    with RestartableMoto() as s3:                       # s3.endpoint: an S3Endpoint
        s3.freeze(); s3.thaw(); s3.kill(); s3.start()
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from components import missing
from s3server import S3Endpoint, free_port


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        missing(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found[-1]


class ThrowawayPostgres:
    def __init__(self, folder: Path | None = None) -> None:
        # Its own folder under /tmp: pytest's tmp_path is private to root, and PostgreSQL runs
        # as the postgres user.
        self.folder = folder or Path(tempfile.mkdtemp(prefix="pyrkt-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *argv: str) -> subprocess.CompletedProcess[str]:
        command = list(argv)
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    def __enter__(self) -> ThrowawayPostgres:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        made = self._as_postgres(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust",
                                 "-U", "postgres", "--no-sync")
        assert made.returncode == 0, made.stderr
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.folder}'\nfsync = off\n"
                       "max_connections = 200\n")
        self.start()
        return self

    def start(self) -> None:
        started = self._as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data), "-l",
                                    str(self.folder / "log"), "-w", "start")
        assert started.returncode == 0, started.stdout + started.stderr

    def stop(self) -> None:
        stopped = self._as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast",
                                    "-w", "stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr

    def __exit__(self, *exc: object) -> None:
        self._as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


class RestartableMoto:
    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = S3Endpoint(url=f"http://127.0.0.1:{self.port}")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYRKT_TEST_S3"))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(self.endpoint.url, timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("moto did not start")

    def freeze(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def __enter__(self) -> RestartableMoto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.thaw()
            self.process.kill()
            self.process.wait()
