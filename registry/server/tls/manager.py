"""Keeping the ACME certificate: decide when to order, order under a lock, publish the result.

Every registry host runs `check()` periodically (in its sidecar). The certificate lives in
the database; one host at a time orders (the lock), and every host copies the stored
certificate into its local file (`live_file`), which its workers serve from the next
handshake on (see context.py).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from registry.server.config import RegistryConfig

from . import store
from .acme import ACMEError, new_account_key, obtain
from .certs import CertificateInfo, info, load_chain
from .localca import write_private

LOCK_TTL = timedelta(minutes=10)
log = logging.getLogger("pyrkt.tls")

Sessions = Callable[[], Session]


def live_file(config: RegistryConfig) -> Path:
    """The key and chain this host serves when the certificate comes from ACME."""
    return config.data_dir / "tls" / "acme-live.pem"


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def stored_info(cert: dict[str, Any] | None) -> CertificateInfo | None:
    if not cert or not cert.get("chain"):
        return None
    try:
        return info(load_chain(cert["chain"].encode())[0])
    except ValueError:
        return None


def due_reason(cert: dict[str, Any] | None, domains: tuple[str, ...], renew_days: int,
               now: datetime | None = None) -> str | None:
    """Why a new certificate is needed now, or None while the stored one is good."""
    current = stored_info(cert)
    if current is None:
        return "no certificate yet"
    missing = [d for d in domains if not current.covers((d,))]
    if missing:
        return f"the certificate does not cover {', '.join(missing)}"
    left = current.days_left(now)
    if left < renew_days:
        return f"the certificate expires in {left:.1f} days (renewal {renew_days} days before)"
    return None


def check(config: RegistryConfig, sessions: Sessions, holder: str | None = None) -> str | None:
    """Order a certificate when one is due (this host, if it gets the lock), then bring the
    local file up to date. Returns the error line of a failed order, else None."""
    holder = holder or holder_id()
    tls = config.tls
    with sessions() as session:
        reason = due_reason(store.get_json(session, store.CERTIFICATE), config.domains,
                            tls.acme_renew_days)
        locked = reason is not None and store.acquire_lock(session, holder, LOCK_TTL)
    failure = None
    if locked:
        log.info("TLS: ordering a certificate for %s from %s: %s", ", ".join(config.domains),
                 tls.acme_directory, reason)
        try:
            failure = _order(config, sessions)
        finally:
            with sessions() as session:
                store.release_lock(session, holder)
    sync_live_file(config, sessions)
    return failure


def _order(config: RegistryConfig, sessions: Sessions) -> str | None:
    tls = config.tls
    started = datetime.now(UTC).isoformat()
    with sessions() as session:
        account_key = store.get(session, store.ACCOUNT_KEY)
        if account_key is None:
            account_key = new_account_key()
            store.put(session, store.ACCOUNT_KEY, account_key)

    def publish(token: str, validation: str) -> None:
        with sessions() as session:
            store.put(session, store.CHALLENGE_PREFIX + token, validation)

    def unpublish(token: str) -> None:
        with sessions() as session:
            store.remove(session, store.CHALLENGE_PREFIX + token)

    try:
        issued = obtain(tls.acme_directory, config.domains, account_key, email=tls.acme_email,
                        ca_bundle=tls.acme_ca_bundle, publish=publish, unpublish=unpublish)
    except ACMEError as error:
        line = str(error)
        log.error("TLS: %s", line)
        with sessions() as session:
            status = store.get_json(session, store.STATUS) or {}
            status.update(last_attempt=started, last_error=line,
                          last_error_at=datetime.now(UTC).isoformat())
            store.put_json(session, store.STATUS, status)
        return line
    with sessions() as session:
        store.put_json(session, store.CERTIFICATE, {
            "chain": issued.chain_pem, "key": issued.key_pem, "names": list(issued.info.names),
            "not_after": issued.info.not_after.isoformat(), "serial": issued.info.serial,
            "directory": tls.acme_directory, "issued_at": datetime.now(UTC).isoformat()})
        store.put_json(session, store.STATUS, {
            "last_attempt": started, "last_success": datetime.now(UTC).isoformat(),
            "last_error": None})
    log.info("TLS: new certificate %s", issued.info.summary())
    return None


def sync_live_file(config: RegistryConfig, sessions: Sessions) -> bool:
    """Write the stored certificate to this host's live file when it differs; True if so."""
    with sessions() as session:
        cert = store.get_json(session, store.CERTIFICATE)
    if not cert or not cert.get("chain") or not cert.get("key"):
        return False
    content = (cert["key"].rstrip("\n") + "\n" + cert["chain"]).encode()
    target = live_file(config)
    try:
        if target.read_bytes() == content:
            return False
    except OSError:
        pass
    # One file holding key and chain, replaced by rename: a worker never sees a mismatched pair.
    write_private(target, content)
    return True
