"""Keys and a throw-away gpg home shared by the signing tests.

RSA 4096 generation takes several seconds, so one key is made per session; other keys use
Curve25519, which is instant.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from registry.signing import SecretKey, generate_key


@pytest.fixture(scope="session")
def rsa_key() -> SecretKey:
    return generate_key("pyrkt test registry <registry@example.test>")


@pytest.fixture(scope="session")
def other_key() -> SecretKey:
    return generate_key("someone else <else@example.test>", cipher="cv25519")


@pytest.fixture()
def gpg(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run gpg in a private GNUPGHOME (batch mode, no agent prompts, no network)."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)

    def run(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, GNUPGHOME=str(home))
        result = subprocess.run(["gpg", "--batch", "--no-tty", "--yes", "--pinentry-mode",
                                 "loopback", "--passphrase", "", *args],
                                capture_output=True, text=True, errors="replace", env=env,
                                input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"gpg {' '.join(args)} failed:\n{result.stderr}")
        return result

    yield run
    # Stop the agent this home started so no gpg-agent outlives the test.
    subprocess.run(["gpgconf", "--kill", "all"], env=dict(os.environ, GNUPGHOME=str(home)),
                   capture_output=True)
