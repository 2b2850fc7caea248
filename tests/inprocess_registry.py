"""What the in-process registries of the fast tests share (tests/server/server_app.py and
tests/ui/ui_app.py): the base URL, the administrator's password, initialisation, table rows."""

from __future__ import annotations

import json

from live_registry import ADMIN_PASSWORD
from sqlalchemy import MetaData, select
from sqlalchemy.engine import Engine

from registry.server.bootstrap import initialise
from registry.server.config import RegistryConfig

BASE_URL = "http://127.0.0.1:8080"

__all__ = ["ADMIN_PASSWORD", "BASE_URL", "initialise_with_admin_password", "table_rows"]


def initialise_with_admin_password(config: RegistryConfig) -> None:
    """`initialise(config)` with the administrator created with ADMIN_PASSWORD."""
    initialise(config, admin_password=ADMIN_PASSWORD)


# Written by the mere use of a valid token (at most once a minute): a refused request that
# carried one has still changed nothing that matters.
USE_NOTES = {"api_tokens": ("last_used_at", "last_used_addr")}
# The counts of failed sign-ins: refused credentials are meant to leave that trace, and it is
# not content (test_server_throttle.py checks it).
UNCOUNTED_TABLES = ("login_throttle",)


def table_rows(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table (as sorted JSON lists), to compare before and after; the
    notes of token use (USE_NOTES) are left out."""
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        return {table.name: sorted(
                    json.dumps([v for c, v in zip(table.columns.keys(), r, strict=True)
                                if c not in USE_NOTES.get(table.name, ())], default=str)
                    for r in connection.execute(select(table)))
                for table in metadata.sorted_tables if table.name not in UNCOUNTED_TABLES}
