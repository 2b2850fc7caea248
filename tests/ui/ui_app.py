"""The registry app on Flask's test client for the UI's fast tests, and page helpers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from inprocess_registry import (
    ADMIN_PASSWORD,
    BASE_URL,
    initialise_with_admin_password,
    table_rows,
)
from werkzeug.test import TestResponse

from registry.server.app import create_app
from registry.server.config import RegistryConfig

DOMAIN = "127.0.0.1"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class UiApp:
    app: Flask
    config: RegistryConfig

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def rows(self) -> dict[str, list[str]]:
        """Every row of every table, to show that a refused request changed nothing."""
        return table_rows(self.app.extensions["pyrkt"].engine)


def make_ui_app(data_dir: Path, key_file: Path, **settings: str) -> UiApp:
    """`settings`: more PYRKT_REGISTRY_* values without the prefix (e.g. domains=...)."""
    environ = {"PYRKT_REGISTRY_BASE_URL": BASE_URL, "PYRKT_REGISTRY_SIGNING_KEY": str(key_file),
               **{f"PYRKT_REGISTRY_{k.upper()}": v for k, v in settings.items()}}
    config = RegistryConfig.load(environ, data_dir=str(data_dir))
    initialise_with_admin_password(config)
    return UiApp(app=create_app(config, TESTING=True), config=config)


def csrf_from(response: TestResponse) -> str:
    found = CSRF_RE.search(response.get_data(as_text=True))
    assert found, "the page carries no CSRF token"
    return found[1]


def get(client: FlaskClient, path: str, **kwargs: Any) -> TestResponse:
    return client.get(path, base_url=BASE_URL, **kwargs)


def post(client: FlaskClient, path: str, *, origin: str | None = BASE_URL,
         **kwargs: Any) -> TestResponse:
    """A POST as the registry's own pages send it (a browser adds Origin); `origin=None`
    sends none, another value pretends to come from that site."""
    headers = dict(kwargs.pop("headers", None) or {})
    if origin is not None:
        headers.setdefault("Origin", origin)
    return client.post(path, base_url=BASE_URL, headers=headers, **kwargs)


def login(client: FlaskClient, username: str = "admin", password: str = ADMIN_PASSWORD) -> str:
    """Sign in through the form; returns the session's CSRF token for later posts."""
    token = csrf_from(get(client, "/_ui/login"))
    answer = post(client, "/_ui/login", data={"csrf_token": token, "username": username,
                                               "password": password})
    assert answer.status_code == 303, answer.get_data(as_text=True)
    return csrf_from(get(client, "/_ui/account"))
