"""The client's signature matrix: keys of every common shape, made by real gpg at test time.

Accepted: gpg's default key (RSA 3072, primary signs, encryption subkey), RSA with a separate
signing subkey, a sign-only RSA primary, Ed25519 -- all trusted from ONE armored block.
Refused, with a message naming the key (or subkey) and why: an expired primary, a revoked
primary, an expired signing subkey, a revoked signing subkey.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from client_kit import ClientEnv, build_aci

PAST = "20200101T000000"  # keys that must be expired now are made and used "then"


@dataclass
class Shape:
    name: str
    fingerprint: str          # the primary key
    signing_key: str          # what gpg signs with (primary or subkey fingerprint)
    faked_time: str | None = None
    revoke: Callable[[], None] | None = None  # applied after signing (gpg signs with no revoked key)


class Gpg:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = dict(os.environ, GNUPGHOME=str(home))

    def __call__(self, *args: str, faked_time: str | None = None,
                 input: str | None = None) -> subprocess.CompletedProcess[str]:
        timing = ["--faked-system-time", faked_time] if faked_time else []
        result = subprocess.run(["gpg", "--batch", "--no-tty", "--yes", "--pinentry-mode",
                                 "loopback", "--passphrase", "", *timing, *args],
                                env=self.env, capture_output=True, text=True, errors="replace",
                                input=input, timeout=300)
        assert result.returncode == 0, f"gpg {' '.join(args)}: {result.stderr}"
        return result

    def fingerprints(self, uid: str) -> list[str]:
        """Primary then subkey fingerprints of the key with this user ID."""
        listing = self("--with-colons", "--list-keys", uid).stdout
        return [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]

    def make(self, name: str, algo: str, usage: str, expire: str = "never", *,
             faked_time: str | None = None) -> list[str]:
        uid = f"{name} <{name}@matrix.example>"
        self("--quick-generate-key", uid, algo, usage, expire, faked_time=faked_time)
        return self.fingerprints(uid)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gpg, dict[str, Shape]]]:
    if not shutil.which("gpg"):
        pytest.fail("gpg missing: apt-get install gnupg")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    gpg = Gpg(home)
    found: dict[str, Shape] = {}

    # gpg's default: RSA 3072 primary that signs and certifies, plus an encryption subkey.
    uid = "gpg-default <gpg-default@matrix.example>"
    gpg("--quick-generate-key", uid)
    [primary, *_] = gpg.fingerprints(uid)
    found["gpg-default"] = Shape("gpg-default", primary, primary)

    primary, *_ = gpg.make("rsa-subkey", "rsa3072", "cert")
    gpg("--quick-add-key", primary, "rsa3072", "sign", "never")
    found["rsa-subkey"] = Shape("rsa-subkey", primary, gpg.fingerprints("rsa-subkey")[-1])

    [primary] = gpg.make("rsa-sign-only", "rsa2048", "sign")
    found["rsa-sign-only"] = Shape("rsa-sign-only", primary, primary)

    [primary] = gpg.make("ed25519", "ed25519", "sign")
    found["ed25519"] = Shape("ed25519", primary, primary)

    # Refused shapes.
    [primary] = gpg.make("expired", "ed25519", "sign", "1d", faked_time=PAST)
    found["expired"] = Shape("expired", primary, primary, PAST)

    [primary] = gpg.make("revoked", "ed25519", "sign")
    # gpg writes a revocation certificate for every new key; importing it revokes the key.
    revocation = (home / "openpgp-revocs.d" / f"{primary}.rev").read_text()

    def revoke_primary(fingerprint: str = primary) -> None:
        gpg("--import", input=revocation.replace(":-----BEGIN", "-----BEGIN"))
        assert "pub:r:" in gpg("--with-colons", "--list-keys", fingerprint).stdout

    found["revoked"] = Shape("revoked", primary, primary, revoke=revoke_primary)

    [primary] = gpg.make("expired-subkey", "ed25519", "cert", faked_time=PAST)
    gpg("--quick-add-key", primary, "ed25519", "sign", "1d", faked_time=PAST)
    found["expired-subkey"] = Shape("expired-subkey", primary,
                                    gpg.fingerprints("expired-subkey")[-1], PAST)

    [primary] = gpg.make("revoked-subkey", "ed25519", "cert")
    gpg("--quick-add-key", primary, "ed25519", "sign", "never")
    subkey = gpg.fingerprints("revoked-subkey")[-1]
    found["revoked-subkey"] = Shape("revoked-subkey", primary, subkey)
    found["revoked-subkey"].revoke = lambda: revoke_subkey(gpg, found["revoked-subkey"])
    yield gpg, found
    subprocess.run(["gpgconf", "--kill", "all"], env=gpg.env, capture_output=True)


def revoke_subkey(gpg: Gpg, shape: Shape) -> None:
    # gpg 2.2 has no --quick-revoke-subkey: drive --edit-key (select subkey 1, revoke, reason 0).
    gpg("--command-fd", "0", "--edit-key", shape.fingerprint,
        input="key 1\nrevkey\ny\n0\n\ny\nsave\n")
    listing = gpg("--with-colons", "--list-keys", shape.fingerprint).stdout
    assert any(line.startswith("sub:r:") for line in listing.splitlines()), listing


def signed_image(gpg: Gpg, shape: Shape, directory: Path, prefix: str) -> tuple[Path, str]:
    aci = directory / f"{shape.name}.aci"
    image_id = build_aci(aci, f"{prefix}/{shape.name}", {"version": "1"})
    gpg("--armor", "--detach-sign", "--local-user", shape.signing_key + "!",
        "--output", str(aci) + ".asc", str(aci), faked_time=shape.faked_time)
    return aci, image_id


def trust_block(env: ClientEnv, gpg: Gpg, shapes: list[Shape], prefix: str, path: Path) -> None:
    path.write_text(gpg("--armor", "--export", *[s.fingerprint for s in shapes]).stdout)
    assert path.read_text().count("BEGIN PGP PUBLIC KEY BLOCK") == 1
    trusted = env.run(["trust"], "--prefix", prefix, "--skip-fingerprint-review", str(path))
    assert trusted.exit_code == 0, trusted.output


GOOD = ["gpg-default", "rsa-subkey", "rsa-sign-only", "ed25519"]


def test_keys_of_every_common_shape_from_one_block_verify(shapes, env: ClientEnv,
                                                          tmp_path: Path) -> None:
    gpg, found = shapes
    prefix = "matrix.example/good"
    trust_block(env, gpg, [found[n] for n in GOOD], prefix, tmp_path / "good.asc")
    for name in GOOD:
        aci, image_id = signed_image(gpg, found[name], tmp_path, prefix)
        fetched = env.run(["fetch"], "--full", str(aci))
        assert fetched.exit_code == 0, f"{name}: {fetched.output}"
        assert fetched.output.strip().splitlines()[-1] == image_id, name
        assert f"{name}@matrix.example" in fetched.output, fetched.output


@pytest.mark.parametrize(("name", "message"), [
    ("expired", "key {primary} (expired <expired@matrix.example>) expired on 2020-01-02"),
    ("revoked", "key {primary} (revoked <revoked@matrix.example>) is revoked"),
    ("expired-subkey", "signing subkey {subkey} of key {primary} (expired-subkey "
                       "<expired-subkey@matrix.example>) expired on 2020-01-02"),
    ("revoked-subkey", "signing subkey {subkey} of key {primary} (revoked-subkey "
                       "<revoked-subkey@matrix.example>) is revoked"),
])
def test_expired_and_revoked_keys_and_subkeys_are_refused_saying_which(
        shapes, env: ClientEnv, tmp_path: Path, name: str, message: str) -> None:
    gpg, found = shapes
    shape = found[name]
    prefix = "matrix.example/bad"
    # Signed while still valid (at the faked time, or before the revocation).
    aci, _ = signed_image(gpg, shape, tmp_path, prefix)
    if shape.revoke is not None:
        shape.revoke()
    trust_block(env, gpg, [shape], prefix, tmp_path / "bad.asc")
    refused = env.run(["fetch"], str(aci))
    assert refused.exit_code != 0
    expected = message.format(primary=shape.fingerprint, subkey=shape.signing_key)
    assert expected in refused.output, refused.output
    assert "Traceback" not in refused.output
    assert env.store().list() == []
