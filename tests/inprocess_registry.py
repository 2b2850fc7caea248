"""What the in-process registries of the fast tests share (tests/server/server_app.py and
tests/ui/ui_app.py): the base URL, the administrator's password, initialisation, table rows."""

from __future__ import annotations

import json
import os

from live_registry import ADMIN_PASSWORD
from sqlalchemy import MetaData, select
from sqlalchemy.engine import Engine

from registry.server.bootstrap import ADMIN_PASSWORD_ENV, initialise
from registry.server.config import RegistryConfig

BASE_URL = "http://127.0.0.1:8080"

__all__ = ["ADMIN_PASSWORD", "BASE_URL", "initialise_with_admin_password", "table_rows"]


def initialise_with_admin_password(config: RegistryConfig) -> None:
    """`initialise(config)` with the administrator created with ADMIN_PASSWORD; the
    environment is left as it was."""
    previous = os.environ.get(ADMIN_PASSWORD_ENV)
    os.environ[ADMIN_PASSWORD_ENV] = ADMIN_PASSWORD
    try:
        initialise(config)
    finally:
        if previous is None:
            os.environ.pop(ADMIN_PASSWORD_ENV, None)
        else:
            os.environ[ADMIN_PASSWORD_ENV] = previous


def table_rows(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table (as sorted JSON lists), to compare before and after."""
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        return {table.name: sorted(json.dumps(list(r), default=str)
                                   for r in connection.execute(select(table)))
                for table in metadata.sorted_tables}
