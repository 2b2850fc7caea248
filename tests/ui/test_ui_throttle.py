"""The sign-in form under password guessing: growing delays before any scrypt work, and the
right password works again once the delay has passed (services.throttle)."""

from __future__ import annotations

import hashlib
import time

import pytest
from inprocess_registry import ADMIN_PASSWORD
from ui_app import csrf_from, get, make_ui_app, post

FREE = 5
DELAY = 1.0


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


def test_ui_sign_in_is_throttled_and_works_again_after_the_delay(tmp_path, registry_key_file,
                                                                   scrypt_calls) -> None:
    ui = make_ui_app(tmp_path / "ui", registry_key_file, login_free_attempts=str(FREE),
                     login_base_delay=str(DELAY))
    client = ui.client()
    scrypt_calls.clear()  # creating the administrator hashed a password

    def sign_in(password: str):  # type: ignore[no-untyped-def]
        token = csrf_from(get(client, "/_ui/login"))
        return post(client, "/_ui/login", data={"csrf_token": token, "username": "admin",
                                                 "password": password})

    for _ in range(FREE):
        assert sign_in("wrong-password").status_code == 401
    locked = sign_in(ADMIN_PASSWORD)
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.get_data(as_text=True)
    assert len(scrypt_calls) == FREE
    time.sleep(DELAY + 0.2)
    assert sign_in(ADMIN_PASSWORD).status_code == 303
