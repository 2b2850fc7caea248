"""Bringing a data dir to life: schema via Alembic, the signing key, the first administrator."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from registry.server.config import RegistryConfig, ensure_secret_key
from registry.server.db import make_engine, make_session_factory, upgrade_schema
from registry.server.models import SigningKey, User
from registry.server.services import keys, users
from registry.server.services.actor import Actor
from registry.signing import old_client_problems


@dataclass(frozen=True)
class InitReport:
    admin_username: str | None
    # Set only when this run created the administrator with a generated password.
    admin_password: str | None
    key_fingerprint: str
    key_created: bool
    # Why rkt 1.x cannot read the active key (an imported one, or one made before pyrkt made
    # keys it reads); empty when it can.
    key_problems: tuple[str, ...] = ()


def key_user_id(domain: str) -> str:
    return f"pyrkt registry {domain} <registry@{domain}>"


def initialise(config: RegistryConfig, *, admin_username: str | None = None,
               admin_password: str | None = None) -> InitReport:
    """Idempotent: upgrade the schema, make sure a signing key and an administrator exist.

    The first administrator is `admin_username` (else the admin_username setting) with
    `admin_password` (else the admin_password setting, else a generated one)."""
    config = ensure_secret_key(config)
    config.tmp_dir.mkdir(parents=True, exist_ok=True)
    admin_username = admin_username or config.admin_username
    _upgrade_when_reachable(config.database_url, config.db_wait)
    engine = make_engine(config.database_url)
    try:
        with make_session_factory(engine)() as session:
            operator = Actor.operator()
            added = keys.ensure_server_key(session, operator, user_id=key_user_id(config.domains[0]),
                                           key_file=config.signing_key_file)
            active = keys.active_server_key(session)
            created_user, password = None, None
            if session.scalar(select(func.count()).select_from(User)) == 0:
                given = admin_password or config.admin_password
                password = given or users.generate_password()
                users.create_user(session, operator, admin_username, password, is_admin=True)
                created_user = admin_username
                if given:
                    password = None  # the operator chose it; never echo it back
            problems = tuple(old_client_problems(active.public_key))
            return InitReport(admin_username=created_user, admin_password=password,
                              key_fingerprint=active.fingerprint, key_created=added is not None,
                              key_problems=problems)
    finally:
        engine.dispose()


def _upgrade_when_reachable(url: str, wait: float) -> None:
    """Apply migrations, waiting for a database that is still starting (containers start in
    any order); gives up after `wait` seconds (the db_wait setting)."""
    deadline = time.monotonic() + wait
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
