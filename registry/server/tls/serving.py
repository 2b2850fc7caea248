"""What `pyrkt-registry serve` does for HTTPS before it hands over to gunicorn."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from registry.server.config import RegistryConfig

from . import store
from .certs import CertificateError, CertificateInfo, check_pair
from .errors import ServeError
from .manager import live_file

PR_SET_PDEATHSIG = 1
FIRST_CERTIFICATE_TIMEOUT = 180.0


@dataclass(frozen=True)
class CertificateCheck:
    info: CertificateInfo
    warnings: list[str]


def check_certificate_files(config: RegistryConfig) -> CertificateCheck:
    """The configured pair, readable and matching; warnings for expiry and missing names."""
    tls = config.tls
    assert tls.cert is not None
    try:
        found = check_pair(tls.cert, tls.key)
    except CertificateError as error:
        raise ServeError(f"TLS: {error}") from None
    warnings = []
    if found.days_left() <= 0:
        warnings.append(f"the certificate {tls.cert} expired on {found.not_after:%Y-%m-%d}; "
                        "clients will refuse it")
    missing = [d for d in config.domains if not found.covers((d,))]
    if missing:
        warnings.append(f"the certificate {tls.cert} does not name {', '.join(missing)} "
                        f"(it names {', '.join(found.names) or found.subject}); clients "
                        "asking for those names will refuse it")
    return CertificateCheck(found, warnings)


def _die_with_parent() -> None:
    # The sidecar must not outlive the server (gunicorn replaces this process by exec).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def start_sidecar(environ: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "registry.server.tls.sidecar"], env=environ,
                            preexec_fn=_die_with_parent)


def wait_for_first_certificate(config: RegistryConfig, sidecar: subprocess.Popen[bytes],
                               timeout: float = FIRST_CERTIFICATE_TIMEOUT) -> Path:
    """Until the sidecar has a certificate in the live file; a CA refusal (or a dead sidecar)
    ends the wait with its one line."""
    # Imported here to keep start-up fast: only this wait needs the database.
    from registry.server.db import make_engine, make_session_factory

    target = live_file(config)
    started = datetime.now(UTC)
    engine = make_engine(config.database_url)
    sessions = make_session_factory(engine)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if target.is_file():
                return target
            if sidecar.poll() is not None:
                raise ServeError("TLS: the certificate manager exited "
                                 f"(status {sidecar.returncode}); see the lines above")
            with sessions() as session:
                status = store.get_json(session, store.STATUS) or {}
            error_at = status.get("last_error_at")
            if status.get("last_error") and error_at and \
                    datetime.fromisoformat(error_at) >= started:
                raise ServeError(str(status["last_error"]))
            time.sleep(0.2)
    finally:
        engine.dispose()
    raise ServeError(f"TLS: no certificate from {config.tls.acme_directory} after "
                     f"{timeout:.0f}s (see `pyrkt-registry tls status`)")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def environment_for_workers(config: RegistryConfig, cert: Path, key: Path | None) -> dict[str, str]:
    """The settings gunicorn and its workers read (`serve` exports every effective one)."""
    env = {"PYRKT_REGISTRY_TLS_CERT": str(cert),
           "PYRKT_REGISTRY_TLS_KEY": str(key) if key else "",
           # With ACME the workers only serve the live file the sidecar keeps current.
           "PYRKT_REGISTRY_ACME": "0",
           "PYRKT_REGISTRY_HSTS_MAX_AGE": str(config.tls.hsts_max_age)}
    return env


def environment_for_sidecar(config: RegistryConfig) -> dict[str, str]:
    tls = config.tls
    env = dict(os.environ)
    env.update({
        "PYRKT_REGISTRY_ACME": "1" if tls.acme else "0",
        "PYRKT_REGISTRY_ACME_DIRECTORY": tls.acme_directory,
        "PYRKT_REGISTRY_ACME_RENEW_DAYS": str(tls.acme_renew_days),
        "PYRKT_REGISTRY_ACME_CHECK_INTERVAL": str(tls.acme_check_interval),
        "PYRKT_REGISTRY_HTTP_BIND": tls.http_bind or "",
    })
    if tls.acme_email:
        env["PYRKT_REGISTRY_ACME_EMAIL"] = tls.acme_email
    if tls.acme_ca_bundle:
        env["PYRKT_REGISTRY_ACME_CA_BUNDLE"] = str(tls.acme_ca_bundle)
    env.pop("PYRKT_REGISTRY_TLS_CERT", None)
    env.pop("PYRKT_REGISTRY_TLS_KEY", None)
    return env
