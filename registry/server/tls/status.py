"""`pyrkt-registry tls status`: the configured certificate and the shared ACME state."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from registry.server.config import RegistryConfig

from . import store
from .certs import CertificateError, CertificateInfo, file_info
from .manager import due_reason, stored_info


def _cert_dict(found: CertificateInfo, renew_days: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"names": list(found.names), "issuer": found.issuer,
                           "notBefore": found.not_before.isoformat(),
                           "notAfter": found.not_after.isoformat(), "serial": found.serial,
                           "daysLeft": round(found.days_left(), 1)}
    if renew_days is not None:
        out["renewFrom"] = (found.not_after - timedelta(days=renew_days)).isoformat()
    return out


def tls_status(config: RegistryConfig, session: Session) -> dict[str, Any]:
    tls = config.tls
    lines: list[str] = []
    report: dict[str, Any] = {"mode": "acme" if tls.acme else "files" if tls.cert else "none"}
    if tls.cert is not None:
        try:
            found = file_info(tls.cert)
            report["certificate"] = _cert_dict(found)
            lines.append(f"certificate file: {tls.cert}: {found.summary()}")
            if found.days_left() <= 0:
                lines.append("  EXPIRED: clients refuse it")
        except CertificateError as error:
            report["error"] = str(error)
            lines.append(f"certificate file: {error}")
    elif not tls.acme:
        lines.append("TLS: not configured here (no tls_cert, no acme); the ACME state below "
                     "is what the database holds")
    cert = store.get_json(session, store.CERTIFICATE)
    status = store.get_json(session, store.STATUS) or {}
    acme: dict[str, Any] = {"directory": (cert or {}).get("directory") or tls.acme_directory,
                            "lastAttempt": status.get("last_attempt"),
                            "lastSuccess": status.get("last_success"),
                            "lastError": status.get("last_error")}
    issued = stored_info(cert)
    if issued is not None:
        acme["certificate"] = _cert_dict(issued, tls.acme_renew_days)
        lines.append(f"ACME certificate: {issued.summary()}")
        due = due_reason(cert, config.domains, tls.acme_renew_days)
        lines.append(f"  renewal: {due}" if due else
                     f"  renewal from {issued.not_after - timedelta(days=tls.acme_renew_days):%Y-%m-%d}"
                     f" ({tls.acme_renew_days} days before expiry)")
    elif tls.acme or status:
        lines.append("ACME certificate: none yet")
    if status.get("last_attempt"):
        lines.append(f"  last attempt: {status['last_attempt']}"
                     + (f", last success: {status['last_success']}"
                        if status.get("last_success") else ""))
    if status.get("last_error"):
        lines.append(f"  last error: {status['last_error']}")
    report["acme"] = acme
    report["lines"] = lines
    return report
