"""Reading and writing the shared TLS state (see models.py), and the renewal lock."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.server.models import utcnow

from .models import TLSObject

ACCOUNT_KEY = "acme-account-key"
CERTIFICATE = "certificate"
STATUS = "status"
LOCK = "lock"
CHALLENGE_PREFIX = "challenge:"


def get(session: Session, name: str) -> str | None:
    row = session.get(TLSObject, name)
    return row.value if row is not None else None


def get_json(session: Session, name: str) -> dict[str, Any] | None:
    text = get(session, name)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def put(session: Session, name: str, value: str) -> None:
    """Insert or replace one row and commit (a lost insert race becomes an update)."""
    row = session.get(TLSObject, name)
    if row is not None:
        row.value = value
        row.updated_at = utcnow()
        session.commit()
        return
    session.add(TLSObject(name=name, value=value, updated_at=utcnow()))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        session.execute(update(TLSObject).where(TLSObject.name == name)
                        .values(value=value, updated_at=utcnow()))
        session.commit()


def put_json(session: Session, name: str, value: dict[str, Any]) -> None:
    put(session, name, json.dumps(value, sort_keys=True))


def remove(session: Session, name: str) -> None:
    session.execute(delete(TLSObject).where(TLSObject.name == name))
    session.commit()


def acquire_lock(session: Session, holder: str, ttl: timedelta) -> bool:
    """Take the renewal lock for `ttl` (one host orders; the others wait for its result).
    A lock older than `ttl` belongs to a host that died mid-order and is taken over."""
    now = utcnow()
    session.add(TLSObject(name=LOCK, value=holder, updated_at=now))
    try:
        session.commit()
        return True
    except IntegrityError:
        session.rollback()
    taken = session.execute(update(TLSObject)
                            .where(TLSObject.name == LOCK, TLSObject.updated_at < now - ttl)
                            .values(value=holder, updated_at=now))
    session.commit()
    return bool(taken.rowcount)  # type: ignore[attr-defined]


def release_lock(session: Session, holder: str) -> None:
    session.execute(delete(TLSObject).where(TLSObject.name == LOCK, TLSObject.value == holder))
    session.commit()
