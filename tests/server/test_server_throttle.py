"""Brute force: growing delays per account and per address for passwords (the UI's sign-in,
HTTP Basic on the API) and for token guesses, decided before any scrypt work, recorded in the
audit log, shared by every gunicorn worker through the database."""

from __future__ import annotations

import base64
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from inprocess_registry import ADMIN_PASSWORD, BASE_URL
from live_registry import LiveRegistry
from server_app import make_test_registry
from sqlalchemy import create_engine, select

from registry.server.models import AuditEvent

FREE = 5
DELAY = 1.0


@pytest.fixture
def registry(tmp_path, registry_key_file):  # type: ignore[no-untyped-def]
    return make_test_registry(tmp_path / "data", registry_key_file, login_free_attempts=FREE,
                              login_base_delay=DELAY, login_max_delay=30)


@pytest.fixture
def scrypt_calls(monkeypatch):  # type: ignore[no-untyped-def]
    """Counts real scrypt computations (the real function still runs)."""
    calls = []
    real = hashlib.scrypt

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    return calls


def _basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def _whoami(registry, headers, address="10.0.0.1"):  # type: ignore[no-untyped-def]
    return registry.client.get("/_api/v1/repositories", headers=headers, base_url=BASE_URL,
                               environ_base={"REMOTE_ADDR": address})


def _lockouts(registry) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with registry.session() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == "auth.lockout")))


def test_basic_password_guesses_get_growing_delays_without_scrypt(registry, scrypt_calls) -> None:
    for _ in range(FREE):
        assert _whoami(registry, _basic("admin", "wrong-password")).status_code == 401
    assert len(scrypt_calls) == FREE
    # Locked: even the right password is refused at once, with no scrypt at all.
    refused = _whoami(registry, _basic("admin", ADMIN_PASSWORD))
    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "too-many-attempts"
    assert 1 <= int(refused.headers["Retry-After"]) <= 2
    assert len(scrypt_calls) == FREE
    for _ in range(20):
        assert _whoami(registry, _basic("admin", "wrong-password")).status_code == 429
    assert len(scrypt_calls) == FREE
    events = _lockouts(registry)
    assert {(e.target, e.details["scope"]) for e in events} == {("admin", "account"),
                                                                 ("10.0.0.1", "address")}
    # After the delay one more wrong guess doubles it ...
    time.sleep(DELAY + 0.2)
    assert _whoami(registry, _basic("admin", "wrong-again")).status_code == 401
    assert int(_whoami(registry, _basic("admin", ADMIN_PASSWORD)).headers["Retry-After"]) >= 2
    # ... and once it has passed the right password works again and clears the account.
    time.sleep(2 * DELAY + 0.2)
    assert _whoami(registry, _basic("admin", ADMIN_PASSWORD)).status_code == 200
    assert _whoami(registry, _basic("admin", ADMIN_PASSWORD)).status_code == 200


def test_account_is_throttled_whatever_the_address(registry, scrypt_calls) -> None:
    for number in range(FREE):
        assert _whoami(registry, _basic("admin", "guess"), f"10.1.0.{number}").status_code == 401
    assert _whoami(registry, _basic("admin", ADMIN_PASSWORD), "10.1.0.99").status_code == 429
    # Another account from yet another address is not affected.
    registry.api("POST", "/users", json={"username": "alice", "password": "alice-password"})
    assert _whoami(registry, _basic("alice", "alice-password"), "10.1.0.98").status_code == 200


def test_address_is_throttled_whatever_the_account(registry, scrypt_calls) -> None:
    # Password spraying: one password against many (even unknown) names from one address.
    for number in range(FREE):
        assert _whoami(registry, _basic(f"user{number}", "Winter2026!")).status_code == 401
    assert _whoami(registry, _basic("someone-else", "Winter2026!")).status_code == 429
    assert len(scrypt_calls) == FREE
    assert _whoami(registry, _basic("admin", ADMIN_PASSWORD), "10.9.9.9").status_code == 200


def test_token_guesses_are_throttled_per_address(registry) -> None:
    for number in range(FREE):
        wrong = {"Authorization": f"Bearer pyrkt_guess{number}"}
        assert _whoami(registry, wrong).status_code == 401
    answer = _whoami(registry, registry.headers())  # the real token, same address
    assert answer.status_code == 429 and "Retry-After" in answer.headers
    assert _whoami(registry, registry.headers(), "10.2.2.2").status_code == 200
    assert ("10.0.0.1", "address") in {(e.target, e.details["scope"]) for e in _lockouts(registry)}


@pytest.mark.postgres
def test_parallel_guesses_across_gunicorn_workers_share_one_count(tmp_path, new_postgres_database):
    env = {"PYRKT_REGISTRY_LOGIN_FREE_ATTEMPTS": str(FREE),
           "PYRKT_REGISTRY_LOGIN_BASE_DELAY": "30", "PYRKT_REGISTRY_ACCESS_LOG": ""}
    database_url = new_postgres_database()
    with LiveRegistry(tmp_path / "live", database_url=database_url, workers=4, env=env) as live:
        url = live.url("/_api/v1/repositories")

        def guess(number: int) -> tuple[int, float]:
            start = time.monotonic()
            answer = requests.get(url, headers=_basic("admin", f"guess-{number}"), timeout=30)
            return answer.status_code, time.monotonic() - start

        with ThreadPoolExecutor(max_workers=40) as pool:
            results = list(pool.map(guess, range(40)))
        statuses = [status for status, _ in results]
        # Counted in the database before hashing: only the free attempts reach scrypt (401),
        # whichever of the 4 workers took them; every other guess is refused at once.
        assert statuses.count(401) == FREE, statuses
        assert statuses.count(429) == 40 - FREE, statuses
        assert requests.get(url, headers=_basic("admin", live.admin_password),
                            timeout=30).status_code == 429
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            targets = connection.execute(select(AuditEvent.target).where(
                AuditEvent.action == "auth.lockout")).scalars().all()
    finally:
        engine.dispose()
    assert "admin" in targets and "127.0.0.1" in targets
