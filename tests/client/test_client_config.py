"""Client configuration: auth.d headers only for their domain, domains.d, layers, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from client_kit import ClientEnv, FileServer, build_aci

from registry.client import (
    ClientConfig,
    ClientConfigError,
    ConfigDirs,
    InsecureOptions,
    build_session,
)


def _auth(layer: Path, name: str, doc: dict) -> None:
    folder = layer / "auth.d"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps({"rktKind": "auth", "rktVersion": "v1", **doc}))


def test_auth_headers_go_only_to_their_domain(tmp_path: Path, env: ClientEnv, trusted_key) -> None:
    root = tmp_path / "files"
    build_aci(root / "app.aci", "example.com/auth", {"version": "1"}, key=trusted_key)
    env.trust_key(trusted_key, "example.com")
    _auth(env.root / "local", "a", {"domains": ["127.0.0.1"], "type": "basic",
                                    "credentials": {"user": "alice", "password": "secret"}})
    _auth(env.root / "user", "b", {"domains": ["localhost"], "type": "oauth",
                                   "credentials": {"token": "tok-123"}})
    with FileServer(root) as server:
        first = env.run(["fetch"], "--insecure-options", "http", f"{server.url}/app.aci")
        assert first.exit_code == 0, first.output
        other = env.run(["fetch"], "--insecure-options", "http", "--pull-policy", "update",
                        f"http://localhost:{server.port}/app.aci")
        assert other.exit_code == 0, other.output
    sent = [(path, headers.get("Authorization")) for path, headers in server.requests]
    assert sent[:2] == [("/app.aci.asc", "Basic YWxpY2U6c2VjcmV0"),
                        ("/app.aci", "Basic YWxpY2U6c2VjcmV0")]
    assert {auth for _, auth in sent[2:]} == {"Bearer tok-123"}


def test_later_layers_override_and_domain_settings(tmp_path: Path) -> None:
    dirs = ConfigDirs(tmp_path / "system", tmp_path / "local", tmp_path / "user")
    _auth(dirs.system, "x", {"domains": ["example.com"], "type": "oauth",
                             "credentials": {"token": "system"}})
    _auth(dirs.user, "x", {"domains": ["example.com"], "type": "oauth",
                           "credentials": {"token": "user"}})
    ca = tmp_path / "ca.pem"
    ca.write_text("not used here")
    folder = dirs.local / "domains.d"
    folder.mkdir(parents=True)
    (folder / "d.json").write_text(json.dumps({
        "pyrktKind": "domain", "pyrktVersion": "v1", "domains": ["registry.test"], "port": 8443,
        "caBundle": str(ca), "insecureOptions": ["http"]}))
    config = ClientConfig.load(dirs)
    assert config.headers_for("example.com") == {"Authorization": "Bearer user"}
    assert config.headers_for("example.org") == {}
    settings = config.for_host("registry.test")
    assert settings.port == 8443 and settings.ca_bundle == ca and settings.insecure.allow_http
    session = build_session(config, insecure=InsecureOptions.parse("none"))
    assert session.port_for("registry.test") == 8443
    assert session.insecure_for("registry.test").allow_http
    assert not session.insecure_for("example.com").allow_http


@pytest.mark.parametrize(("content", "complaint"), [
    ("{not json", "not valid JSON"),
    ('{"rktKind": "auth", "rktVersion": "v1", "domains": ["a"], "type": "magic", '
     '"credentials": {}}', "unknown auth type"),
    ('{"rktKind": "auth", "rktVersion": "v2", "domains": ["a"]}', "unsupported version"),
    ('{"rktKind": "auth", "rktVersion": "v1", "domains": [], "type": "basic", '
     '"credentials": {"user": "u", "password": "p"}}', "non-empty list"),
])
def test_bad_auth_files_are_named(tmp_path: Path, env: ClientEnv, content: str,
                                  complaint: str) -> None:
    folder = env.root / "local" / "auth.d"
    folder.mkdir(parents=True)
    (folder / "bad.json").write_text(content)
    with pytest.raises(ClientConfigError, match=complaint):
        ClientConfig.load(env.dirs())
    result = env.run(["fetch"], "--port", "9", "127.0.0.1/app")  # nothing listens on port 9
    assert result.exit_code != 0 and "bad.json" in result.output and complaint in result.output


def test_insecure_options_parse_like_rkt() -> None:
    assert InsecureOptions.parse("all-fetch").enabled == {"image", "tls", "http", "pubkey"}
    assert InsecureOptions.parse("none").enabled == frozenset()
    assert InsecureOptions.parse("image,tls").skip_tls_check
    with pytest.raises(ValueError, match='unknown insecure option "bogus"'):
        InsecureOptions.parse("image,bogus")


def test_bad_insecure_option_is_a_usage_error(env: ClientEnv) -> None:
    result = env.run(["fetch"], "--insecure-options", "bogus", "127.0.0.1/app")
    assert result.exit_code == 2 and "unknown insecure option" in result.output
