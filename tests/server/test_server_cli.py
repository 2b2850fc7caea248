"""`pyrkt-registry`: init, users, tokens, repositories, keys and gc on a fresh data dir."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from server_app import BASE_URL, make_test_registry
from server_images import build_aci

from registry.cli.registry import main
from registry.server.config import ConfigError, RegistryConfig


@pytest.fixture
def run(tmp_path, registry_key_file, monkeypatch):  # type: ignore[no-untyped-def]
    for name in list(__import__("os").environ):
        if name.startswith("PYRKT_REGISTRY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PYRKT_REGISTRY_SIGNING_KEY", str(registry_key_file))
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, ok: bool = True):  # type: ignore[no-untyped-def]
        result = runner.invoke(main, ["--data-dir", str(tmp_path / "data"), *args], input=input)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return invoke


def test_init_creates_admin_once_and_is_idempotent(run, tmp_path):
    first = run("init")
    assert "administrator: admin" in first.output
    assert "password (shown only now):" in first.output
    assert (tmp_path / "data" / "registry.db").exists()
    second = run("init")
    assert "password" not in second.output  # printed once, never again
    assert run("user", "list").output.strip() == "admin  (admin)"


def test_users_tokens_repositories_and_keys(run):
    run("init")
    added = run("user", "add", "ci")
    assert "password (shown only now):" in added.output
    run("user", "passwd", "ci", "--password-stdin", input="a-long-password\n")
    token = run("token", "create", "ci", "--description", "pipeline").stdout.strip().splitlines()[-1]
    assert token.startswith("pyrkt_")
    listed = run("token", "list", "ci").output
    assert "pipeline" in listed and token not in listed  # only a hint is kept
    run("token", "revoke", listed.split()[0])
    assert "revoked" in run("token", "list", "ci").output
    run("repo", "create", "127.0.0.1/team/app", "--private")
    run("repo", "grant", "127.0.0.1/team/app", "ci", "write")
    assert "127.0.0.1/team/app\tprivate" in run("repo", "list").output
    bad = run("repo", "create", "example.com/x/y", ok=False)
    assert bad.exit_code != 0 and "not under a domain" in bad.output
    assert "already exists" in run("user", "add", "ci", ok=False).output
    assert "no user named" in run("user", "rm", "ghost", ok=False).output
    run("user", "rm", "ci")

    keys_before = run("key", "list").output.splitlines()
    assert len(keys_before) == 1 and "active" in keys_before[0]
    old = keys_before[0].split()[0]
    assert "only active" in run("key", "retire", old, ok=False).output


def test_commands_refuse_an_uninitialised_data_dir(run, tmp_path):
    result = run("user", "list", ok=False)
    data = tmp_path / "data"
    assert result.exit_code != 0
    assert f"no registry in {data}: run `pyrkt-registry --data-dir {data} init`" in result.output
    assert not data.exists()  # nothing created: only init and serve make a registry


def test_gc_removes_unreferenced_images_and_orphans(tmp_path, registry_key_file):
    registry = make_test_registry(tmp_path / "data", registry_key_file)
    name = "127.0.0.1/team/gc"
    for version in ("1", "2"):
        assert registry.upload(name, build_aci(tmp_path / version, name, version=version)).status_code == 201
    assert registry.api("DELETE", f"/repositories/{name}/-/versions/1").status_code == 200
    blobs = [o for o in registry.snapshot()["objects"] if o.startswith("blobs/")]
    assert len(blobs) == 2
    report = registry.api("POST", "/gc").json
    assert len(report["images_removed"]) == 1
    after = [o for o in registry.snapshot()["objects"] if o.startswith("blobs/")]
    assert len(after) == 2  # the blob stays until the grace period for orphans has passed
    from datetime import timedelta

    from registry.server.services.actor import Actor
    from registry.server.services.gc import collect_garbage

    with registry.app.app_context():
        session = registry.session()
        report = collect_garbage(session, registry.app.extensions["pyrkt"].storage, Actor.operator(),
                                 orphan_grace=timedelta(0))
        session.close()
    assert len(report.blobs_removed) == 1
    remaining = [o for o in registry.snapshot()["objects"] if o.startswith("blobs/")]
    assert len(remaining) == 1
    served = registry.get(f"/_aci/{name}/2/linux/amd64/image.aci")
    assert served.status_code == 200


def test_config_layers_and_errors(tmp_path):
    (tmp_path / "registry.toml").write_text('domains = ["a.example", "b.example"]\nmax_upload = 10\n')
    config = RegistryConfig.load({}, data_dir=str(tmp_path))
    assert config.domains == ("a.example", "b.example") and config.max_upload == 10
    assert config.database_url == f"sqlite:///{tmp_path / 'registry.db'}"
    env = {"PYRKT_REGISTRY_MAX_UPLOAD": "20", "PYRKT_REGISTRY_BASE_URL": "https://reg.example:8443"}
    config = RegistryConfig.load(env, data_dir=str(tmp_path))
    assert config.max_upload == 20 and config.base_url == "https://reg.example:8443"
    assert RegistryConfig.load({"PYRKT_REGISTRY_BASE_URL": BASE_URL}, data_dir=str(tmp_path / "x")).domains == ("127.0.0.1",)
    # Each message names the variable that holds the bad value.
    for bad, word in (({"PYRKT_REGISTRY_STORAGE": "ftp"}, "PYRKT_REGISTRY_STORAGE"),
                      ({"PYRKT_REGISTRY_STORAGE": "s3"}, "PYRKT_REGISTRY_S3_BUCKET"),
                      ({"PYRKT_REGISTRY_MAX_UPLOAD": "lots"}, "PYRKT_REGISTRY_MAX_UPLOAD"),
                      ({"PYRKT_REGISTRY_BASE_URL": "ftp://x"}, "PYRKT_REGISTRY_BASE_URL")):
        with pytest.raises(ConfigError, match=word):
            RegistryConfig.load(bad, data_dir=str(tmp_path / "y"))


def test_robots_scoped_tokens_and_the_audit_log(run, tmp_path):
    import csv
    import io
    import json

    run("init")
    run("repo", "create", "127.0.0.1/team/app")
    created = run("robot", "create", "ci-app", "--description", "CI of team/app")
    assert "robot ci-app created" in created.output
    run("repo", "grant", "127.0.0.1/team/app", "ci-app", "write")
    token = run("robot", "token", "ci-app", "--scope", "push", "--repository",
                "127.0.0.1/team/app", "--expires-days", "7")
    plain = token.stdout.strip().splitlines()[-1]
    assert plain.startswith("pyrkt_") and "push on 127.0.0.1/team/app" in token.output
    listed = json.loads(run("token", "list", "ci-app", "--json").stdout)["tokens"]
    assert [(t["scope"], t["repository"], t["state"]) for t in listed] == [
        ("push", "127.0.0.1/team/app", "active")]
    robots = json.loads(run("robot", "list", "--json").stdout)["robots"]
    assert robots == [{"name": "ci-app", "description": "CI of team/app",
                       "roles": {"127.0.0.1/team/app": "write"}}]
    refused = run("token", "create", "ci-app", "--scope", "root", ok=False)
    assert refused.exit_code != 0 and "root" in refused.output
    bad_expiry = run("token", "create", "ci-app", "--expires-days", "soon", ok=False)
    assert bad_expiry.exit_code != 0 and "bad expiry 'soon'" in bad_expiry.output
    missing = run("token", "create", "ci-app", "--repository", "127.0.0.1/team/nope", ok=False)
    assert "repository '127.0.0.1/team/nope' not found" in missing.output
    # The audit log, filtered, in each format.
    table = run("audit", "--user", "(operator)", "--action", "robot").stdout
    assert "robot.create\tci-app" in table
    rows = list(csv.DictReader(io.StringIO(run("audit", "--repository", "127.0.0.1/team/app",
                                               "--format", "csv").stdout)))
    assert {r["action"] for r in rows} == {"repository.create", "role.set"}
    events = json.loads(run("audit", "--limit", "2", "--format", "json").stdout)["events"]
    assert len(events) == 2 and events[0]["actor_kind"] == "operator"
    assert run("robot", "rm", "ci-app").output.strip() == "robot ci-app deleted"
    described = run("repo", "describe", "127.0.0.1/team/app", "-", input="# App\n\n**fast**\n")
    assert "description of 127.0.0.1/team/app set" in described.output
    updates = json.loads(run("audit", "--action", "repository.update", "--format",
                             "json").stdout)["events"]
    assert updates[0]["details"]["description"] == "# App\n\n**fast**"
    assert json.loads(run("robot", "list", "--json").stdout)["robots"] == []
