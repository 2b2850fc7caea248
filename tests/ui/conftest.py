"""Fixtures of the web UI's tests: an in-process app (fast) and images built by the writer."""

from __future__ import annotations

from pathlib import Path

import pytest
from live_registry import signing_key_file
from ui_app import UiApp, make_ui_app


@pytest.fixture(scope="session")
def registry_key_file() -> Path:
    return signing_key_file()


@pytest.fixture
def ui_app(tmp_path: Path, registry_key_file: Path) -> UiApp:
    return make_ui_app(tmp_path / "data", registry_key_file)
