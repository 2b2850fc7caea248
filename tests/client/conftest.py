"""Fixtures of the client tests: signing keys (made once) and a per-test client environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from client_kit import ClientEnv

from registry.signing import SecretKey, generate_key


@pytest.fixture(scope="session")
def trusted_key() -> SecretKey:
    # Curve25519 keys take milliseconds to make; RSA is covered by the gpg cross-checks.
    return generate_key("pyrkt client tests <trusted@127.0.0.1>", cipher="cv25519")


@pytest.fixture(scope="session")
def stranger_key() -> SecretKey:
    return generate_key("Somebody else <stranger@example.org>", cipher="cv25519")


@pytest.fixture()
def env(tmp_path: Path) -> ClientEnv:
    return ClientEnv(tmp_path / "client")
