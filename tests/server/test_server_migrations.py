"""The schema comes only from Alembic, and the migrations produce exactly the models' schema."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from registry.server.db import make_engine, schema_is_current, upgrade_schema
from registry.server.schema import load_all_models


def _assert_models_match(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, load_all_models())
        assert differences == [], f"migrations and models differ: {differences}"
        assert set(inspect(engine).get_table_names()) == set(load_all_models().tables) | {"alembic_version"}
    finally:
        engine.dispose()


def _upgrade_downgrade_upgrade(url: str) -> None:
    upgrade_schema(url)
    _assert_models_match(url)
    engine = make_engine(url)
    assert schema_is_current(engine)
    engine.dispose()
    from alembic import command

    from registry.server.db import alembic_config

    command.downgrade(alembic_config(url), "base")
    engine = create_engine(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade_schema(url)
    _assert_models_match(url)


def test_sqlite_upgrade_to_head_matches_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = make_engine(url)
    assert not schema_is_current(engine)
    engine.dispose()
    _upgrade_downgrade_upgrade(url)


@pytest.mark.postgres
def test_postgresql_upgrade_to_head_matches_models(new_postgres_database):
    url = new_postgres_database()
    engine = create_engine(url)
    assert inspect(engine).get_table_names() == []
    engine.dispose()
    _upgrade_downgrade_upgrade(url)
