"""Fixtures of the /v2/ tests: one live gunicorn registry for the folder (tests use their
own repository names), a sample OCI layout, fresh PostgreSQL databases when CI has one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import oci_images
import pytest
from components import missing
from live_registry import LiveRegistry
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from v2_client import V2

POSTGRES_ENV = "PYRKT_TEST_POSTGRES_URL"


@pytest.fixture(scope="package")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRegistry]:
    with LiveRegistry(tmp_path_factory.mktemp("oci-registry"), workers=2) as live:
        yield live


@pytest.fixture(scope="package")
def v2(registry: LiveRegistry) -> V2:
    return V2(registry, registry.token)


@pytest.fixture(scope="package")
def anonymous(registry: LiveRegistry) -> V2:
    return V2(registry, None)


@pytest.fixture(scope="session")
def sample_image(tmp_path_factory: pytest.TempPathFactory) -> oci_images.OCIImage:
    """Two layers with whiteouts, an opaque directory and hard links (tests/oci_images.py)."""
    layout: Path = tmp_path_factory.mktemp("oci-layout") / "layout"
    return oci_images.write_oci_layout(layout, oci_images.sample_layers(), tag="v1")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database (CI sets PYRKT_TEST_POSTGRES_URL), dropped afterwards."""
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        missing(f"{POSTGRES_ENV} is not set (CI sets it)")
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"pyrkt_oci_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
