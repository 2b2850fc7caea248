"""The audit log: every change the services make adds one row in the same transaction.

Each row names the actor and its kind (user, robot, operator, system, anonymous); the
registry's own actions (`Actor.automatic`) also say what triggered them. `search` filters by
actor, repository and action for the UI's page, the API and the command line, and
`export_rows` gives the columns the CSV and JSON exports share.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from registry.server.models import AuditEvent, aware
from registry.server.operations.webhooks import enqueue_for_audit

from .actor import Actor

EXPORT_COLUMNS = ("id", "at", "actor", "actor_kind", "action", "target", "triggered_by",
                  "remote_addr", "details")
MAX_PAGE = 1000


def record(
    session: Session, actor: Actor, action: str, target: str = "", **details: object
) -> AuditEvent:
    """Add an audit row; it is committed (or rolled back) together with the change it records."""
    if actor.token is not None and "via_token" not in details:
        details["via_token"] = actor.token.id
    event = AuditEvent(
        actor=actor.name,
        actor_kind=actor.kind,
        triggered_by=(actor.cause or "")[:512] or None,
        action=action,
        target=target,
        details={k: v for k, v in details.items() if v is not None},
        remote_addr=actor.remote_addr,
    )
    session.add(event)
    # Webhook deliveries ride on the audit row: same transaction, so they exist iff it does.
    enqueue_for_audit(session, event, system=actor.system)
    return event


@dataclass(frozen=True)
class AuditFilter:
    """Empty fields match everything. `repository` matches the repository itself and its
    versions (targets `NAME` and `NAME:VERSION`)."""

    actor: str = ""
    repository: str = ""
    action: str = ""

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.actor:
            query = query.where(AuditEvent.actor == self.actor)
        if self.action:
            # "image" matches image.upload; "image.upload" only itself.
            query = query.where(or_(AuditEvent.action == self.action,
                                    AuditEvent.action.like(_escaped(self.action) + ".%",
                                                           escape="\\")))
        if self.repository:
            query = query.where(or_(AuditEvent.target == self.repository,
                                    AuditEvent.target.like(_escaped(self.repository) + ":%",
                                                           escape="\\")))
        return query

    def as_args(self) -> dict[str, str]:
        return {k: v for k, v in (("user", self.actor), ("repository", self.repository),
                                  ("action", self.action)) if v}


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def recent(session: Session, *, limit: int = 100, before_id: int | None = None,
           where: AuditFilter | None = None) -> Sequence[AuditEvent]:
    """The newest events first (for the UI's audit page and `GET /_api/v1/audit`)."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(max(1, min(limit, MAX_PAGE)))
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    if where is not None:
        query = where.apply(query)
    return session.scalars(query).all()


def every(session: Session, where: AuditFilter) -> Iterator[AuditEvent]:
    """Every matching event, newest first, fetched in pages (exports of any length)."""
    before: int | None = None
    while True:
        page = recent(session, limit=MAX_PAGE, before_id=before, where=where)
        yield from page
        if len(page) < MAX_PAGE:
            return
        before = page[-1].id


def choices(session: Session) -> tuple[list[str], list[str]]:
    """The actors and actions that occur in the log (the filter menus)."""
    actors = session.scalars(select(AuditEvent.actor).where(AuditEvent.actor.is_not(None))
                             .distinct().order_by(AuditEvent.actor)).all()
    actions = session.scalars(select(AuditEvent.action).distinct()
                              .order_by(AuditEvent.action)).all()
    return [a for a in actors if a], list(actions)


def export_row(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.id, "at": aware(event.at).isoformat(), "actor": event.actor,
            "actor_kind": event.actor_kind, "action": event.action, "target": event.target,
            "triggered_by": event.triggered_by, "remote_addr": event.remote_addr,
            "details": event.details}
