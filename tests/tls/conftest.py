"""The HTTPS tests run as root, each in its own network namespace (see tls_helpers.py)."""

from __future__ import annotations

import pytest
from tls_helpers import needs_root


@pytest.fixture(autouse=True)
def _root() -> None:
    needs_root()
