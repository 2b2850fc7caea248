"""Fixtures for the builder's tests (helpers live in build_helpers.py)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from build_helpers import Acbuild


@pytest.fixture
def acb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Acbuild:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return Acbuild(work)


@pytest.fixture(scope="session")
def acbuild_script() -> str:
    """The installed `acbuild` console script (what users' shell scripts call)."""
    beside_python = Path(sys.executable).parent / "acbuild"
    found = str(beside_python) if beside_python.exists() else shutil.which("acbuild")
    assert found, "the acbuild console script is not installed (pip install -e .)"
    return found
