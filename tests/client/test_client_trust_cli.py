"""`pyrkt trust` rules (rkt's), `trust list` / `trust rm`, and keys and signatures made by gpg."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from client_kit import ClientEnv, build_aci
from components import missing

from registry.client import TrustStore


@pytest.fixture
def gpg_installed() -> None:
    if shutil.which("gpg") is None:
        missing("gpg is not installed (apt-get install gnupg)")


needs_gpg = pytest.mark.usefixtures("gpg_installed")


def _key_file(env: ClientEnv, key) -> Path:
    path = env.root / "key.asc"
    path.write_text(key.armored_public())
    return path


def test_implicit_root_trust_is_refused(env: ClientEnv, trusted_key) -> None:
    result = env.run(["trust"], "--skip-fingerprint-review", str(_key_file(env, trusted_key)))
    assert result.exit_code != 0
    assert "--root required for non-prefixed (root) keys" in result.output
    assert TrustStore(env.dirs()).list() == []
    both = env.run(["trust"], "--root", "--prefix", "example.com", str(_key_file(env, trusted_key)))
    assert both.exit_code != 0 and "exclusive" in both.output
    nothing = env.run(["trust"])
    assert nothing.exit_code != 0 and "--prefix required" in nothing.output


def test_review_shows_fingerprint_and_user_id_then_asks(env: ClientEnv, trusted_key) -> None:
    key = str(_key_file(env, trusted_key))
    declined = env.run(["trust"], "--prefix", "example.com/app", key, input="no\n")
    assert declined.exit_code != 0
    fingerprint = trusted_key.fingerprint
    spaced = " ".join(fingerprint[i:i + 4] for i in range(0, 20, 4))
    assert spaced in declined.output and "trusted@127.0.0.1" in declined.output
    assert TrustStore(env.dirs()).list() == []
    accepted = env.run(["trust"], "--prefix", "example.com/app", key, input="yes\n")
    assert accepted.exit_code == 0, accepted.output
    [trusted] = TrustStore(env.dirs()).list()
    assert trusted.prefix == "example.com/app" and trusted.fingerprint == fingerprint
    assert trusted.path == (env.config_layer / "trustedkeys" / "prefix.d" / "example.com" /
                            "app" / fingerprint.lower())


def test_keys_for_covers_ancestors_and_root_only(env: ClientEnv, trusted_key, stranger_key) -> None:
    env.trust_key(trusted_key, "example.com/team")
    env.trust_key(stranger_key, None)
    store = TrustStore(env.dirs())
    assert {k.fingerprint for k in store.keys_for("example.com/team/app")} == {
        trusted_key.fingerprint, stranger_key.fingerprint}
    assert [k.fingerprint for k in store.keys_for("example.com/teamster")] == [
        stranger_key.fingerprint]  # a string prefix is not a path prefix


def test_list_and_rm(env: ClientEnv, trusted_key, stranger_key) -> None:
    env.trust_key(trusted_key, "example.com/a")
    env.trust_key(trusted_key, "example.com/b")
    env.trust_key(stranger_key, None)
    listed = env.run(["trust", "list"])
    assert listed.exit_code == 0
    lines = listed.output.strip().splitlines()
    assert lines[0].split() == ["PREFIX", "FINGERPRINT", "USER", "ID", "FILE"]
    assert "(root)" in lines[1] and stranger_key.fingerprint in lines[1]
    assert len(lines) == 4
    removed = env.run(["trust", "rm"], trusted_key.fingerprint)
    assert removed.exit_code == 0, removed.output
    assert [k.fingerprint for k in TrustStore(env.dirs()).list()] == [stranger_key.fingerprint]
    again = env.run(["trust", "rm"], trusted_key.fingerprint)
    assert again.exit_code != 0 and "no trusted key has the fingerprint" in again.output


def test_system_keys_count_but_cannot_be_removed_here(env: ClientEnv, trusted_key) -> None:
    folder = env.root / "system" / "trustedkeys" / "prefix.d" / "example.com"
    folder.mkdir(parents=True)
    (folder / trusted_key.fingerprint.lower()).write_text(trusted_key.armored_public())
    assert [k.prefix for k in TrustStore(env.dirs()).keys_for("example.com/x")] == ["example.com"]
    refused = env.run(["trust", "rm"], trusted_key.fingerprint)
    assert refused.exit_code != 0 and "system configuration" in refused.output


@pytest.fixture()
def gnupg(tmp_path: Path):
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    environ = dict(os.environ, GNUPGHOME=str(home))

    def gpg(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["gpg", "--batch", "--yes", "--pinentry-mode", "loopback",
                               "--passphrase", "", *args], env=environ, check=True,
                              capture_output=True)

    gpg("--quick-gen-key", "GPG Signer <gpg@example.com>", "rsa2048", "sign", "never")
    yield gpg
    subprocess.run(["gpgconf", "--kill", "all"], env=environ, capture_output=True)


@needs_gpg
def test_gpg_key_and_gpg_signature_are_accepted(env: ClientEnv, gnupg, tmp_path: Path) -> None:
    key_file = tmp_path / "gpg-key.asc"
    key_file.write_bytes(gnupg("--armor", "--export", "gpg@example.com").stdout)
    trusted = env.run(["trust"], "--prefix", "example.com/gpg", "--skip-fingerprint-review",
                      str(key_file))
    assert trusted.exit_code == 0, trusted.output
    aci = tmp_path / "gpg.aci"
    image_id = build_aci(aci, "example.com/gpg/app", {"version": "1"})
    gnupg("--armor", "--detach-sign", "--output", str(aci) + ".asc", str(aci))
    fetched = env.run(["fetch"], "--full", str(aci))
    assert fetched.exit_code == 0, fetched.output
    assert fetched.output.strip().splitlines()[-1] == image_id
    assert "GPG Signer" in fetched.output
    # and what gpg signed, tampered afterwards, is refused
    other = tmp_path / "other.aci"
    build_aci(other, "example.com/gpg/other", {"version": "1"})
    shutil.copy(str(aci) + ".asc", str(other) + ".asc")
    refused = env.run(["fetch"], str(other))
    assert refused.exit_code != 0 and "signature does not verify" in refused.output
