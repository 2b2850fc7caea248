"""Bringing a data dir to life: schema via Alembic, the signing key, the first administrator."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from registry.server.config import RegistryConfig, ensure_secret_key
from registry.server.db import make_engine, make_session_factory, upgrade_schema
from registry.server.models import SigningKey, User
from registry.server.services import keys, users
from registry.server.services.actor import Actor

ADMIN_PASSWORD_ENV = "PYRKT_REGISTRY_ADMIN_PASSWORD"


@dataclass(frozen=True)
class InitReport:
    admin_username: str | None
    # Set only when this run created the administrator with a generated password.
    admin_password: str | None
    key_fingerprint: str
    key_created: bool


def key_user_id(domain: str) -> str:
    return f"pyrkt registry {domain} <registry@{domain}>"


def initialise(config: RegistryConfig, *, admin_username: str = "admin") -> InitReport:
    """Idempotent: upgrade the schema, make sure a signing key and an administrator exist."""
    config = ensure_secret_key(config)
    config.tmp_dir.mkdir(parents=True, exist_ok=True)
    _upgrade_when_reachable(config.database_url)
    engine = make_engine(config.database_url)
    try:
        with make_session_factory(engine)() as session:
            operator = Actor.operator()
            added = keys.ensure_server_key(session, operator, user_id=key_user_id(config.domains[0]),
                                           key_file=config.signing_key_file)
            active = keys.active_server_key(session)
            created_user, password = None, None
            if session.scalar(select(func.count()).select_from(User)) == 0:
                given = os.environ.get(ADMIN_PASSWORD_ENV)
                password = given or users.generate_password()
                users.create_user(session, operator, admin_username, password, is_admin=True)
                created_user = admin_username
                if given:
                    password = None  # the operator chose it; never echo it back
            return InitReport(admin_username=created_user, admin_password=password,
                              key_fingerprint=active.fingerprint, key_created=added is not None)
    finally:
        engine.dispose()


def _upgrade_when_reachable(url: str) -> None:
    """Apply migrations, waiting for a database that is still starting (containers start in
    any order); gives up after PYRKT_REGISTRY_DB_WAIT seconds (30)."""
    deadline = time.monotonic() + float(os.environ.get("PYRKT_REGISTRY_DB_WAIT", "30"))
    while True:
        try:
            upgrade_schema(url)
            return
        except OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def server_key_count(config: RegistryConfig) -> int:
    engine = make_engine(config.database_url)
    try:
        with make_session_factory(engine)() as session:
            return session.scalar(select(func.count()).select_from(SigningKey)) or 0
    finally:
        engine.dispose()
