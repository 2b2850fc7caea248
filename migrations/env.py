"""Alembic environment: migrates the registry's database to the models in registry.server.models."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from registry.server.config import RegistryConfig
from registry.server.schema import load_all_models

target_metadata = load_all_models()


def _url() -> str:
    # Set by registry.server.db.alembic_config; from the environment when run as `alembic ...`.
    url = context.config.get_main_option("sqlalchemy.url")
    return url or RegistryConfig.load().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        # Batch mode lets later migrations alter tables on SQLite (which cannot ALTER much).
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
