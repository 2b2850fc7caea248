"""The client applies the registry's own rules (registry.aci) before trusting or sending:
`pyrkt push` refuses a name or manifest it cannot send safely before any request, `pyrkt
fetch` refuses what the registry would refuse on upload. One clear line, no traceback."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from click.testing import CliRunner, Result
from client_kit import ClientEnv, FileServer, build_aci, sign
from hostile_archives import NESTED_MANIFEST, aci_bytes

from registry.cli.main import pyrkt


def _push(*args: str) -> Result:
    env = {"PYRKT_TOKEN": "pyrkt_not_a_real_token", "PYRKT_REGISTRY_URL": None,
           "PYRKT_LOCAL_CONFIG": "/nonexistent", "PYRKT_SYSTEM_CONFIG": "/nonexistent"}
    return CliRunner().invoke(pyrkt, ["push", *args], env=env, catch_exceptions=False)


def _manifest(name: str, version: str = "1.0") -> bytes:
    return json.dumps({"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
                       "labels": [{"name": "version", "value": version}]}).encode()


def _assert_one_clean_line(result: Result, *fragments: str) -> None:
    assert result.exit_code != 0
    assert "Traceback" not in result.output and "RecursionError" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_push_refuses_a_traversing_name_before_any_request(tmp_path: Path) -> None:
    aci = tmp_path / "evil.aci"
    aci.write_bytes(aci_bytes(_manifest("127.0.0.1/../../etc")))
    with FileServer(tmp_path / "site") as server:
        result = _push(str(aci), "--registry", server.url)
        _assert_one_clean_line(result, "refusing to push", "bad image name",
                               "'127.0.0.1/../../etc'")
        assert server.paths() == [], "a request was sent"


def test_push_refuses_a_bad_version_before_any_request(tmp_path: Path) -> None:
    aci = tmp_path / "ok.aci"
    build_aci(aci, "127.0.0.1/demo/hello", {"version": "1.0"})
    with FileServer(tmp_path / "site") as server:
        result = _push(str(aci), "--registry", server.url, "--version", "../../../x")
        _assert_one_clean_line(result, "refusing to push", "bad version '../../../x'")
        assert server.paths() == []


def test_push_of_a_deeply_nested_manifest_is_a_clear_error(tmp_path: Path) -> None:
    aci = tmp_path / "deep.aci"
    aci.write_bytes(aci_bytes(NESTED_MANIFEST))
    with FileServer(tmp_path / "site") as server:
        result = _push(str(aci), "--registry", server.url)
        _assert_one_clean_line(result, "is not a valid ACI", "nested deeper than 64 levels")
        assert server.paths() == []


def test_fetch_of_a_deeply_nested_manifest_is_a_clear_error(tmp_path: Path, trusted_key) -> None:
    env = ClientEnv(tmp_path / "client")
    env.trust_key(trusted_key, None)
    aci = tmp_path / "deep.aci"
    aci.write_bytes(aci_bytes(NESTED_MANIFEST))
    sign(trusted_key, aci)
    env.store()
    before = env.snapshot()
    result = env.run(["fetch"], str(aci))
    _assert_one_clean_line(result, "not a valid ACI", "nested deeper than 64 levels")
    assert env.snapshot() == before


def _aci_with_version(path: Path, version: str) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in (("manifest", _manifest("127.0.0.1/demo/hello", version)),
                           ("rootfs/hello", b"hello\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        root = tarfile.TarInfo("rootfs")
        root.type = tarfile.DIRTYPE
        archive.addfile(root)
    path.write_bytes(buffer.getvalue())
    return path


def test_fetch_refuses_a_version_label_the_registry_would_refuse(tmp_path: Path,
                                                                 trusted_key) -> None:
    env = ClientEnv(tmp_path / "client")
    env.trust_key(trusted_key, None)
    aci = _aci_with_version(tmp_path / "climb.aci", "../../../x")
    sign(trusted_key, aci)
    env.store()
    before = env.snapshot()
    result = env.run(["fetch"], str(aci))
    _assert_one_clean_line(result, "not a valid ACI", "bad version label '../../../x'")
    assert env.snapshot() == before
    assert not list((env.store_dir / "tmp").iterdir())


def test_fetch_over_http_refuses_the_same_version_label(tmp_path: Path, trusted_key) -> None:
    env = ClientEnv(tmp_path / "client")
    env.trust_key(trusted_key, None)
    site = tmp_path / "site"
    site.mkdir()
    aci = _aci_with_version(site / "climb.aci", "../../../x")
    sign(trusted_key, aci)
    env.store()
    before = env.snapshot()
    with FileServer(site) as server:
        result = env.run(["fetch"], "--insecure-options=http", f"{server.url}/climb.aci")
    _assert_one_clean_line(result, "not a valid ACI", "bad version label '../../../x'")
    assert env.snapshot() == before
