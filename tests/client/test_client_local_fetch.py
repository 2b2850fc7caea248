"""`pyrkt fetch ./image.aci`: a local file's signature (`image.aci.asc` beside it) is checked in
the same pass as the copy into the store, and nothing unverified is stored."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from client_kit import ClientEnv, build_aci, host_labels

NAME = "127.0.0.1/local/app"


def _pipeline_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate()
                  if t.name in ("verify-feed", "write-behind", "aci-inflate", "aci-sha512"))


def _fetch(env: ClientEnv, path: Path):
    return env.run(["fetch"], "--full", str(path))


def test_a_signed_local_file_is_verified_and_stored(tmp_path: Path, env: ClientEnv,
                                                    trusted_key) -> None:
    image = tmp_path / "app.aci"
    # past one write-behind step (32 MiB), incompressible so the file is that large
    image_id = build_aci(image, NAME, host_labels(), {"blob": os.urandom(40 << 20)},
                         key=trusted_key)
    env.trust_key(trusted_key, NAME)
    before = _pipeline_threads()
    result = _fetch(env, image)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == image_id
    stored = env.store().get(image_id)
    assert stored.has_signature
    assert stored.path.read_bytes() == image.read_bytes()
    assert stored.signature_path is not None
    assert stored.signature_path.read_bytes() == image.with_name("app.aci.asc").read_bytes()
    assert _pipeline_threads() == before
    assert list((env.store_dir / "tmp").iterdir()) == []


def test_a_tampered_local_file_is_refused_and_nothing_stored(tmp_path: Path, env: ClientEnv,
                                                             trusted_key) -> None:
    image = tmp_path / "app.aci"
    build_aci(image, NAME, host_labels(), {"hello.txt": "the signed content"}, key=trusted_key)
    signature = image.with_name("app.aci.asc").read_bytes()
    build_aci(image, NAME, host_labels(), {"hello.txt": "something else"})
    image.with_name("app.aci.asc").write_bytes(signature)
    env.trust_key(trusted_key, NAME)
    env.store()
    before = env.snapshot()
    result = _fetch(env, image)
    assert result.exit_code != 0
    assert "signature does not verify" in result.output
    assert env.snapshot() == before
    assert list((env.store_dir / "tmp").iterdir()) == []
    assert _pipeline_threads() == []


def test_a_local_file_signed_by_an_untrusted_key_is_refused(tmp_path: Path, env: ClientEnv,
                                                            trusted_key, stranger_key) -> None:
    image = tmp_path / "app.aci"
    build_aci(image, NAME, host_labels(), {"hello.txt": "hi"}, key=stranger_key)
    env.trust_key(trusted_key, NAME)
    result = _fetch(env, image)
    assert result.exit_code != 0
    assert "not trusted" in result.output
    assert env.store().list() == []


def test_a_local_file_signed_by_a_key_trusted_for_another_name_is_refused(
        tmp_path: Path, env: ClientEnv, trusted_key) -> None:
    """The signer is a trusted key (so the check streams), but not for this image's name."""
    image = tmp_path / "app.aci"
    build_aci(image, NAME, host_labels(), {"hello.txt": "hi"}, key=trusted_key)
    env.trust_key(trusted_key, "127.0.0.1/elsewhere")
    result = _fetch(env, image)
    assert result.exit_code != 0
    assert "not trusted" in result.output and "127.0.0.1/elsewhere" in result.output
    assert env.store().list() == []
    assert list((env.store_dir / "tmp").iterdir()) == []


def test_a_local_file_without_a_signature_is_refused(tmp_path: Path, env: ClientEnv) -> None:
    image = tmp_path / "app.aci"
    build_aci(image, NAME, host_labels(), {"hello.txt": "hi"})
    result = _fetch(env, image)
    assert result.exit_code != 0
    assert "no signature next to" in result.output
    assert env.store().list() == []


def test_image_verify_rehashes_and_rechecks_the_signature_in_one_pass(
        tmp_path: Path, env: ClientEnv, trusted_key) -> None:
    from registry.client import TrustStore

    image, other = tmp_path / "app.aci", tmp_path / "other.aci"
    image_id = build_aci(image, NAME, host_labels(), {"blob": os.urandom(2 << 20)},
                         key=trusted_key)
    build_aci(other, NAME, host_labels("2.0"), {"hello.txt": "other"}, key=trusted_key)
    env.trust_key(trusted_key, NAME)
    assert _fetch(env, image).exit_code == 0
    stored = env.store().get(image_id)
    ok = env.run(["image", "verify"], image_id)
    assert ok.exit_code == 0 and f"{NAME}: ok" in ok.output, ok.output

    # the stored signature replaced by a valid signature of another file, by the same key
    assert stored.signature_path is not None
    stored.signature_path.write_bytes(other.with_name("other.aci.asc").read_bytes())
    bad = env.run(["image", "verify"], image_id)
    assert bad.exit_code != 0 and "FAILED: signature: bad signature" in bad.output, bad.output
    assert _pipeline_threads() == []

    # damage is reported first, whatever the signature
    data = bytearray(stored.path.read_bytes())
    data[len(data) // 2] ^= 1
    stored.path.write_bytes(bytes(data))
    damaged = env.run(["image", "verify"], image_id)
    assert damaged.exit_code != 0 and "is damaged" in damaged.output, damaged.output

    # the key no longer trusted for the name
    stored.path.write_bytes(image.read_bytes())
    TrustStore(env.dirs()).remove(trusted_key.fingerprint)
    untrusted = env.run(["image", "verify"], image_id)
    assert untrusted.exit_code != 0 and "no key is trusted" in untrusted.output
    assert _pipeline_threads() == []
