"""Managing webhooks (site administrators): create, list, enable, remove, read deliveries.

Called by the JSON API, the web UI and `pyrkt-registry webhook`; sending is `webhooks`'.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.server.models import Repository
from registry.server.services import audit
from registry.server.services.actor import Actor
from registry.server.services.errors import BadRequest, Forbidden, NotFound

from .models import Webhook, WebhookDelivery
from .webhooks import EVENTS, check_events, check_url, new_secret


def _admin(actor: Actor) -> None:
    if not actor.is_site_admin:
        raise Forbidden("only an administrator manages webhooks", code="no-role")


def create_webhook(session: Session, actor: Actor, url: str, *, events: Sequence[str] = EVENTS,
                   repository: str | None = None, description: str = "",
                   secret: str | None = None) -> Webhook:
    """A new hook; its secret (generated unless given) is returned once, on the row."""
    _admin(actor)
    try:
        check_url(url)
        chosen = check_events(list(events))
    except ValueError as error:
        raise BadRequest(str(error), code="bad-webhook") from None
    repository_id = None
    if repository:
        repository_id = session.scalar(select(Repository.id).where(Repository.name == repository))
        if repository_id is None:
            raise NotFound(f"repository {repository!r} not found", code="repository-not-found")
    hook = Webhook(url=url, events=chosen, repository_id=repository_id,
                   description=description[:255], secret=secret or new_secret(), enabled=True)
    session.add(hook)
    session.flush()
    audit.record(session, actor, "webhook.create", url, webhook_id=hook.id, events=chosen,
                 repository=repository)
    session.commit()
    return hook


def list_webhooks(session: Session, actor: Actor) -> Sequence[Webhook]:
    _admin(actor)
    return session.scalars(select(Webhook).order_by(Webhook.id)).all()


def get_webhook(session: Session, actor: Actor, hook_id: int) -> Webhook:
    _admin(actor)
    hook = session.get(Webhook, hook_id)
    if hook is None:
        raise NotFound(f"no webhook {hook_id}", code="webhook-not-found")
    return hook


def set_enabled(session: Session, actor: Actor, hook_id: int, enabled: bool) -> Webhook:
    hook = get_webhook(session, actor, hook_id)
    hook.enabled = enabled
    audit.record(session, actor, "webhook.enable" if enabled else "webhook.disable", hook.url,
                 webhook_id=hook.id)
    session.commit()
    return hook


def delete_webhook(session: Session, actor: Actor, hook_id: int) -> None:
    hook = get_webhook(session, actor, hook_id)
    audit.record(session, actor, "webhook.delete", hook.url, webhook_id=hook.id)
    session.delete(hook)
    session.commit()


def deliveries(session: Session, actor: Actor, hook_id: int | None = None,
               *, limit: int = 100) -> Sequence[WebhookDelivery]:
    """The newest deliveries first (all hooks, or one)."""
    _admin(actor)
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(max(1, min(limit, 1000)))
    if hook_id is not None:
        query = query.where(WebhookDelivery.webhook_id == hook_id)
    return session.scalars(query).all()
