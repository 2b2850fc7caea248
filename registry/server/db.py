"""Database engine and sessions; the schema itself comes from Alembic (see `upgrade_schema`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from registry.resources import migrations_dir

DEFAULT_CONNECT_TIMEOUT = 3
DEFAULT_STATEMENT_TIMEOUT = 15
DEFAULT_POOL_TIMEOUT = 5


def make_engine(url: str, *, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
                statement_timeout: int = DEFAULT_STATEMENT_TIMEOUT,
                pool_timeout: int = DEFAULT_POOL_TIMEOUT) -> Engine:
    """An engine whose every wait is bounded: connecting, one statement, a free pooled
    connection. During a database outage a request then fails in seconds (and is answered
    503 by registry.server.outage) instead of hanging; `statement_timeout=0` means none."""
    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            # WAL lets gunicorn workers read while one writes; foreign keys are off by default.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    connect_args: dict[str, object] = {}
    if url.startswith("postgresql"):
        # libpq's own timeout (whole seconds, at least 2) and TCP keepalives, so a connection
        # to a server that vanished is noticed; statement_timeout bounds a stuck statement.
        connect_args = {"connect_timeout": max(2, int(connect_timeout)),
                        "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
                        "keepalives_count": 2}
        if statement_timeout:
            connect_args["options"] = f"-c statement_timeout={int(statement_timeout * 1000)}"
    # pre_ping: a connection the server closed (a restart) is replaced, not handed out.
    return create_engine(url, pool_pre_ping=True, pool_timeout=pool_timeout,
                         pool_size=10, max_overflow=20, connect_args=connect_args)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: views keep using loaded rows after the service commits.
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> AlembicConfig:
    folder = migrations_dir()
    config = AlembicConfig()
    config.set_main_option("script_location", str(folder))
    # '%' is ConfigParser's interpolation character; URLs may hold it in passwords.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_schema(url: str, revision: str = "head") -> None:
    """Create or upgrade the schema to `revision` (the only way tables are made)."""
    _ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)


def schema_is_current(engine: Engine) -> bool:
    script = ScriptDirectory.from_config(alembic_config(str(engine.url)))
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    return set(current) == set(script.get_heads())


def sqlite_file(url: str) -> Path | None:
    """The database file of a file-backed SQLite URL, else None (in-memory, other databases)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != prefix + ":memory:":
        return Path(url[len(prefix) :].split("?", 1)[0])
    return None


def _ensure_sqlite_dir(url: str) -> None:
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
