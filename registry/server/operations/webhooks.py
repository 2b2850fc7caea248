"""Webhooks: JSON notifications of pushes, deletions, conversions and retention runs.

Delivery is an outbox. `enqueue_for_audit` runs inside `services.audit.record`, so every
change that is audited writes its delivery rows in the change's own transaction: a rolled-back
change notifies nobody, a committed one is never forgotten. A dispatcher (one thread in each
gunicorn worker, started by the `post_worker_init` hook; or `pyrkt-registry webhook deliver`)
claims due rows, POSTs them and records the answer. A push therefore never waits for a
receiver, however slow or dead.

Each request carries `X-Pyrkt-Event`, `X-Pyrkt-Delivery` (the row's id, stable across
retries) and `X-Pyrkt-Signature: sha256=<hex>`, the HMAC-SHA256 of the exact body under the
hook's secret. A failure (no answer within the timeout, or a status outside 2xx) is retried
with exponential backoff: `retry_base * 2**(attempt-1)` seconds, up to MAX_ATTEMPTS.

This module reads only the models, so the audit service can call it without a cycle.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from registry.server.models import AuditEvent, Repository

from .models import Webhook, WebhookDelivery

log = logging.getLogger("pyrkt.webhooks")

EVENTS = ("push", "delete", "conversion", "retention")
# Which audited actions are which event. An image the registry converted itself is published
# by the operator actor; its event is "conversion" (recorded by the offer), not a push.
ACTION_EVENTS = {
    "image.upload": "push",
    "oci.manifest.push": "push",
    "version.delete": "delete",
    "repository.delete": "delete",
    "oci.manifest.delete": "delete",
    "oci.conversion": "conversion",
    "retention.run": "retention",
}
MAX_ATTEMPTS = 8
CLAIM_FOR = timedelta(seconds=60)
SIGNATURE_HEADER = "X-Pyrkt-Signature"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: receivers compute the same over the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook URL {url!r} is not an http(s) URL with a host")
    return url


def check_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in EVENTS]
    if unknown or not events:
        raise ValueError(f"webhook events must be some of {', '.join(EVENTS)}"
                         + (f" (not {', '.join(unknown)})" if unknown else ""))
    return list(dict.fromkeys(events))


def _repository_name(target: str) -> str:
    """The repository an audited target names ("example.com/app:1.0" -> "example.com/app")."""
    return target.split(":", 1)[0]


def enqueue_for_audit(session: Session, event: AuditEvent, *, system: bool) -> None:
    """Queue a delivery to every hook that wants this audited change (same transaction)."""
    kind = ACTION_EVENTS.get(event.action)
    if kind is None or (kind == "push" and system and event.action == "image.upload"):
        return
    hooks = session.scalars(select(Webhook).where(Webhook.enabled.is_(True))).all()
    if not hooks:
        return
    repository = _repository_name(event.target) if event.target else None
    repository_id = None
    if repository is not None:
        repository_id = session.scalar(select(Repository.id).where(Repository.name == repository))
    for hook in hooks:
        if kind not in hook.events:
            continue
        if hook.repository_id is not None and hook.repository_id != repository_id:
            continue
        payload = {
            "id": str(uuid.uuid4()),
            "event": kind,
            "action": event.action,
            "repository": repository,
            "target": event.target,
            "actor": event.actor,
            "at": (event.at or datetime.now(UTC)).isoformat(),
            "details": event.details,
        }
        session.add(WebhookDelivery(webhook=hook, event=kind,
                                    payload=json.dumps(payload, sort_keys=True, default=str)))


@dataclass
class DeliveryOutcome:
    delivery_id: int
    ok: bool
    status_code: int | None
    error: str


def deliver_due(sessions: sessionmaker[Session], *, retry_base: float = 5.0,
                timeout: float = 10.0, limit: int = 20, now: datetime | None = None,
                on_outcome: Callable[[DeliveryOutcome], None] | None = None) -> list[DeliveryOutcome]:
    """Send the deliveries that are due; safe to run in several processes at once (a row is
    claimed with a conditional UPDATE before it is sent)."""
    now = now or datetime.now(UTC)
    with sessions() as session:
        due = session.scalars(
            select(WebhookDelivery.id)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now,
                   or_(WebhookDelivery.claimed_until.is_(None),
                       WebhookDelivery.claimed_until < now))
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit)
        ).all()
    outcomes: list[DeliveryOutcome] = []
    for delivery_id in due:
        outcome = _deliver_one(sessions, delivery_id, now=now, retry_base=retry_base,
                               timeout=timeout)
        if outcome is not None:
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    return outcomes


def _deliver_one(sessions: sessionmaker[Session], delivery_id: int, *, now: datetime,
                 retry_base: float, timeout: float) -> DeliveryOutcome | None:
    with sessions() as session:
        claimed = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending",
                   or_(WebhookDelivery.claimed_until.is_(None),
                       WebhookDelivery.claimed_until < now))
            .values(claimed_until=now + CLAIM_FOR)
        ).rowcount  # type: ignore[attr-defined]
        session.commit()
        if not claimed:
            return None  # another dispatcher has it
        delivery = session.get(WebhookDelivery, delivery_id)
        assert delivery is not None
        hook = delivery.webhook
        body = delivery.payload.encode()
        url, secret, event = hook.url, hook.secret, delivery.event
    status_code: int | None = None
    error = ""
    started = time.monotonic()
    try:
        answer = requests.post(url, data=body, timeout=timeout, allow_redirects=False, headers={
            "Content-Type": "application/json",
            "User-Agent": "pyrkt-registry-webhook",
            "X-Pyrkt-Event": event,
            "X-Pyrkt-Delivery": str(delivery_id),
            SIGNATURE_HEADER: sign(secret, body),
        })
        status_code = answer.status_code
        answer.close()
        ok = 200 <= status_code < 300
        if not ok:
            error = f"HTTP {status_code}"
    except requests.RequestException as exc:
        ok = False
        error = f"{exc.__class__.__name__}: {exc}"[:500]
    finished = datetime.now(UTC)
    with sessions() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None:
            return None  # the hook was deleted meanwhile
        delivery.attempts += 1
        attempt: dict[str, object] = {
            "at": finished.isoformat(), "status": status_code, "error": error,
            "seconds": round(time.monotonic() - started, 3)}
        delivery.attempt_log = [*(delivery.attempt_log or []), attempt][-MAX_ATTEMPTS:]
        delivery.last_status_code = status_code
        delivery.last_error = error
        delivery.claimed_until = None
        if ok:
            delivery.status, delivery.delivered_at = "delivered", finished
        elif delivery.attempts >= MAX_ATTEMPTS:
            delivery.status = "failed"
        else:
            delivery.next_attempt_at = finished + timedelta(
                seconds=retry_base * 2 ** (delivery.attempts - 1))
        session.commit()
        if not ok:
            log.warning("webhook %s delivery %d attempt %d failed: %s", url, delivery_id,
                        delivery.attempts, error)
    return DeliveryOutcome(delivery_id, ok, status_code, error)


class Dispatcher(threading.Thread):
    """Sends due deliveries every `interval` seconds until stopped (one per worker process)."""

    def __init__(self, sessions: sessionmaker[Session], *, interval: float = 1.0,
                 retry_base: float = 5.0, timeout: float = 10.0,
                 on_outcome: Callable[[DeliveryOutcome], None] | None = None) -> None:
        super().__init__(name="pyrkt-webhooks", daemon=True)
        self.sessions, self.interval = sessions, interval
        self.retry_base, self.timeout, self.on_outcome = retry_base, timeout, on_outcome
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                deliver_due(self.sessions, retry_base=self.retry_base, timeout=self.timeout,
                            on_outcome=self.on_outcome)
            except Exception:  # the database may be down for a while; try again next tick
                log.exception("webhook dispatcher pass failed")

    def stop(self) -> None:
        self.stopped.set()


def describe(hook: Webhook) -> dict[str, Any]:
    return {"id": hook.id, "url": hook.url, "events": hook.events, "enabled": hook.enabled,
            "repository": hook.repository.name if hook.repository else None,
            "description": hook.description, "created_at": hook.created_at.isoformat()}


def describe_delivery(delivery: WebhookDelivery) -> dict[str, Any]:
    return {"id": delivery.id, "webhook": delivery.webhook_id, "event": delivery.event,
            "status": delivery.status, "attempts": delivery.attempts,
            "last_status_code": delivery.last_status_code, "last_error": delivery.last_error,
            "attempt_log": delivery.attempt_log or [],
            "created_at": delivery.created_at.isoformat(),
            "delivered_at": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
            "next_attempt_at": delivery.next_attempt_at.isoformat()}


def start_dispatcher(app: Any) -> Dispatcher | None:
    """Start this process's dispatcher for a registry app (gunicorn's post_worker_init)."""
    state = getattr(app, "extensions", {}).get("pyrkt")
    if state is None:
        return None
    # Imported here: prometheus_client is loaded only where a server runs.
    from . import metrics

    def count(outcome: DeliveryOutcome) -> None:
        metrics.WEBHOOK_DELIVERIES.labels("delivered" if outcome.ok else "failed").inc()

    dispatcher = Dispatcher(state.sessions, retry_base=state.config.webhook_retry_base,
                            timeout=state.config.webhook_timeout, on_outcome=count)
    dispatcher.start()
    return dispatcher
