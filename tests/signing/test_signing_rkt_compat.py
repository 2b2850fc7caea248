"""Every key the registry makes (`init`, `key generate`, `key rotate`) and every signature it serves,
judged four ways: gpg, sq, Go's x/crypto/openpgp, and the packets against rkt 1.x's rules.

A real registry (gunicorn on 127.0.0.1) signs uploads; the test downloads the served key block,
image and `.asc` and hands them to the real tools. A second registry starts with a key made by
Sequoia's generator (the shape rkt refuses: critical subpacket 32), and `key rotate` +
`key resign` fix it while the old key keeps verifying what it signed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pysequoia
import pytest
import requests
from live_registry import LiveRegistry
from openpgp_checkers import (
    check_four_ways,
    go_read_keys,
    go_verify,
    gpg_verify,
    packet_problems,
    sq_verify,
)

from registry.aci import ImageManifest, write_aci
from registry.signing import old_client_problems, read_public_keys

pytestmark = [pytest.mark.e2e]

NAME = "127.0.0.1/team/app"


def build_aci(directory: Path, version: str) -> Path:
    rootfs = directory / f"rootfs-{version}" / "rootfs"
    rootfs.mkdir(parents=True)
    (rootfs / "hello").write_text(f"hello {version}\n")
    manifest = ImageManifest.from_dict({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": NAME,
        "labels": [{"name": "version", "value": version}, {"name": "os", "value": "linux"},
                   {"name": "arch", "value": "amd64"}],
    })
    target = directory / f"app-{version}.aci"
    write_aci(manifest, rootfs, target)
    return target


def push(registry: LiveRegistry, image: Path) -> None:
    with image.open("rb") as body:
        response = registry.api("POST", f"/repositories/{NAME}/-/images", data=body,
                                headers={"Content-Type": "application/octet-stream"})
    assert response.status_code in (200, 201), response.text


def served(registry: LiveRegistry, version: str, tmp_path: Path) -> tuple[bytes, Path, bytes]:
    """(key block, downloaded image, signature) as a client gets them."""
    base = f"{registry.base_url}/_aci/{NAME}/{version}/linux/amd64/image.aci"
    image = tmp_path / f"downloaded-{version}.aci"
    image.write_bytes(requests.get(base, timeout=60).content)
    signature = requests.get(base + ".asc", timeout=30)
    keys = requests.get(f"{registry.base_url}/_aci/pubkeys.gpg", timeout=30)
    assert signature.status_code == keys.status_code == 200
    return keys.content, image, signature.content


def key_list(registry: LiveRegistry) -> list[dict]:
    return json.loads(registry.cli("key", "list", "--json").stdout)


def active_fingerprint(registry: LiveRegistry) -> str:
    [active] = [k for k in key_list(registry) if k["status"] == "active"][:1]
    return active["fingerprint"]


def test_every_generated_key_and_signature_passes_four_judges(tmp_path: Path) -> None:
    live = LiveRegistry(tmp_path / "registry")
    del live.environ["PYRKT_REGISTRY_SIGNING_KEY"]  # `init` generates the registry's key
    with live as registry:
        signers: dict[str, str] = {}

        def check_version(version: str) -> None:
            keys, image, signature = served(registry, version, tmp_path)
            assert packet_problems(keys) == []
            # rkt stores the whole block and uses the first key it reads: the active one.
            assert go_read_keys(keys)[0] == active_fingerprint(registry)
            check_four_ways(keys, image, signature, signers[version])

        signers["1"] = active_fingerprint(registry)           # made by `init`
        push(registry, build_aci(tmp_path, "1"))
        check_version("1")

        signers["2"] = registry.cli("key", "generate").stdout.strip()
        push(registry, build_aci(tmp_path, "2"))
        check_version("2")

        signers["3"] = registry.cli("key", "rotate").stdout.strip()
        push(registry, build_aci(tmp_path, "3"))
        check_version("3")

        assert len(set(signers.values())) == 3
        listed = key_list(registry)
        assert [k["oldClientsCanRead"] for k in listed] == [True, True, True]
        assert "rkt 1.x: ok" in registry.cli("key", "list").stdout
        assert "cannot read this key" not in registry.cli("init").stderr
        # Old signatures keep verifying against what is served now, by all judges.
        for version in ("1", "2"):
            check_version(version)


def test_rotation_fixes_a_key_rkt_cannot_read(tmp_path: Path) -> None:
    sequoia_key = tmp_path / "sequoia-key.asc"
    sequoia_key.write_text(str(pysequoia.Tsk.generate("old registry <old@127.0.0.1>",
                                                      cipher_suite=pysequoia.CipherSuite.RSA2k)))
    live = LiveRegistry(tmp_path / "registry", env={"PYRKT_REGISTRY_SIGNING_KEY": str(sequoia_key)})
    with live as registry:
        old = active_fingerprint(registry)
        push(registry, build_aci(tmp_path, "1"))
        keys, image, old_signature = served(registry, "1", tmp_path)
        assert any("critical subpacket 32" in p for p in packet_problems(keys))
        [entry] = key_list(registry)
        assert entry["oldClientsCanRead"] is False
        assert "critical subpacket 32" in " ".join(entry["oldClientProblems"])
        assert "rkt 1.x CANNOT read it" in registry.cli("key", "list").stdout
        again = registry.cli("init")  # idempotent; it warns about the imported key
        assert "warning: rkt 1.x and appc clients of its time cannot read this key" in again.stderr

        rotated = registry.cli("key", "rotate")
        new = rotated.stdout.strip()
        assert "1 image(s) are still signed by a key rkt 1.x cannot read" in rotated.stderr
        assert "pyrkt-registry key resign" in rotated.stderr
        status = {k["fingerprint"]: (k["status"], k["oldClientsCanRead"]) for k in key_list(registry)}
        assert status == {new: ("active", True), old: ("retired", False)}

        keys, _, _ = served(registry, "1", tmp_path)
        published = read_public_keys(keys)
        assert [k.fingerprint for k in published] == [new, old]
        assert old_client_problems(published[0]) == []
        assert packet_problems(published[0].armored()) == []
        assert go_read_keys(keys)[0] == new
        # The retired key still verifies the signature it made (gpg, sq, Go's newer x/crypto).
        assert gpg_verify(keys, image, old_signature) == old
        assert sq_verify(keys, image, old_signature) in {fpr[-16:] for fpr in
                                                         published[1].key_fingerprints}
        assert go_verify(keys, image, old_signature) == old

        push(registry, build_aci(tmp_path, "2"))
        keys, image2, signature2 = served(registry, "2", tmp_path)
        check_four_ways(keys, image2, signature2, new)

        assert registry.cli("key", "resign").stdout.strip() == "re-signed 1 image(s)"
        keys, image, resigned = served(registry, "1", tmp_path)
        assert resigned != old_signature
        check_four_ways(keys, image, resigned, new)
        assert registry.cli("key", "resign").stdout.strip() == "re-signed 0 image(s)"
