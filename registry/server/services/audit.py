"""The audit log: every change the services make adds one row in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.server.models import AuditEvent
from registry.server.operations.webhooks import enqueue_for_audit

from .actor import Actor


def record(
    session: Session, actor: Actor, action: str, target: str = "", **details: object
) -> AuditEvent:
    """Add an audit row; it is committed (or rolled back) together with the change it records."""
    event = AuditEvent(
        actor=actor.name,
        action=action,
        target=target,
        details={k: v for k, v in details.items() if v is not None},
        remote_addr=actor.remote_addr,
    )
    session.add(event)
    # Webhook deliveries ride on the audit row: same transaction, so they exist iff it does.
    enqueue_for_audit(session, event, system=actor.system)
    return event


def recent(session: Session, *, limit: int = 100, before_id: int | None = None) -> Sequence[AuditEvent]:
    """The newest events first (for the UI's audit page and `GET /_api/v1/audit`)."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(max(1, min(limit, 1000)))
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return session.scalars(query).all()
