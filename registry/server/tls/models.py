"""ACME state shared by every registry host: one small key-value table.

Rows (`name` -> `value`): `acme-account-key` (PEM), `acme-account` (the account URL at that
directory, JSON), `certificate` (JSON: chain, key, names, dates), `status` (JSON: last attempt,
last error), `challenge:<token>` (the http-01 key authorization any host answers with) and
`lock` (which host is ordering, until when).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from registry.server.models import Base, utcnow


class TLSObject(Base):
    __tablename__ = "tls_objects"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)
