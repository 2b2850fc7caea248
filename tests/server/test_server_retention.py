"""Retention policies: dry run and real run over a repository of 50 versions, `latest` and
protected versions kept, age rules, the registry-wide default, the API, the CLI and gc."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from server_app import make_test_registry
from server_images import build_aci
from sqlalchemy import select, update

from registry.server.models import AuditEvent, Image, Tag
from registry.server.operations.retention import apply_retention, plan, protect, set_policy
from registry.server.services.actor import Actor
from registry.server.services.gc import collect_garbage

NAME = "127.0.0.1/demo/busy"


@pytest.fixture(scope="module")
def fifty(tmp_path_factory, registry_key_file):
    """A registry whose repository has versions 1.0 .. 50.0, pushed in that order."""
    root = tmp_path_factory.mktemp("retention")
    registry = make_test_registry(root / "data", registry_key_file)
    for number in range(1, 51):
        aci = build_aci(root / "images", NAME, version=f"{number}.0")
        answer = registry.upload(NAME, aci)
        assert answer.status_code == 201, answer.get_json()
    return registry


def _versions(registry) -> list[str]:
    answer = registry.api("GET", f"/repositories/{NAME}/-/images")
    assert answer.status_code == 200
    return sorted({i["version"] for i in answer.get_json()["images"]}, key=lambda v: float(v))


def _fresh(tmp_path, registry_key_file, count: int):
    registry = make_test_registry(tmp_path / "data", registry_key_file)
    for number in range(1, count + 1):
        assert registry.upload(NAME, build_aci(tmp_path / "images", NAME,
                                               version=f"{number}.0")).status_code == 201
    return registry


def test_dry_run_lists_what_would_go_and_changes_nothing(fifty):
    answer = fifty.api("PUT", f"/repositories/{NAME}/-/retention", json={"keep_last": 10})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["effective"] == {"keep_last": 10, "max_age_days": None,
                                              "scope": "repository"}
    before = fifty.snapshot()
    dry = fifty.api("POST", "/gc", query_string={"dry_run": "1"})
    assert dry.status_code == 200
    doomed = [d["version"] for d in dry.get_json()["retention"]["deleted"]]
    assert doomed == [f"{n}.0" for n in range(1, 41)]  # oldest first; the 10 newest stay
    assert len(dry.get_json()["images_removed"]) == 40
    assert fifty.snapshot() == before
    listed = fifty.api("GET", "/retention/plan").get_json()["deleted"]
    assert [d["version"] for d in listed] == doomed


def test_real_run_deletes_all_but_newest_latest_and_protected(tmp_path, registry_key_file):
    registry = _fresh(tmp_path, registry_key_file, 50)
    assert registry.api("PUT", f"/repositories/{NAME}/-/latest",
                        json={"version": "3.0"}).status_code == 200
    assert registry.api("PUT", f"/repositories/{NAME}/-/versions/7.0/protected").status_code == 200
    assert registry.api("PUT", f"/repositories/{NAME}/-/retention",
                        json={"keep_last": 10}).status_code == 200
    report = registry.api("POST", "/gc").get_json()
    deleted = {d["version"] for d in report["retention"]["deleted"]}
    assert len(deleted) == 38 and {"3.0", "7.0"}.isdisjoint(deleted)
    assert _versions(registry) == ["3.0", "7.0"] + [f"{n}.0" for n in range(41, 51)]
    # The freed images are gone from the index in the same gc run ...
    with registry.session() as session:
        assert session.scalar(select(Image).where(Image.name == NAME).limit(1)) is not None
        assert len(session.scalars(select(Image)).all()) == 12
        actions = [e.action for e in session.scalars(select(AuditEvent))]
    assert actions.count("version.delete") == 38 and "retention.run" in actions
    # ... and their blobs once the orphan grace has passed (a later gc, here at once).
    with registry.app.app_context(), registry.session() as session:
        gc_report = collect_garbage(session, registry.app.extensions["pyrkt"].storage,
                                    Actor.operator(), orphan_grace=timedelta(0))
    assert len(gc_report.blobs_removed) == 38
    # Every kept version still downloads.
    for version in _versions(registry):
        answer = registry.get(f"/_aci/{NAME}/{version}/linux/amd64/image.aci")
        assert answer.status_code == 200


def test_age_rule_and_both_rules(tmp_path, registry_key_file):
    registry = _fresh(tmp_path, registry_key_file, 6)
    now = datetime.now(UTC)
    with registry.session() as session:
        for number in range(1, 5):  # 1.0..4.0 are 100 days old; 5.0 and 6.0 are new
            session.execute(update(Tag).where(Tag.version == f"{number}.0")
                            .values(created_at=now - timedelta(days=100 - number)))
        session.commit()
        set_policy(session, Actor.operator(), NAME, keep_last=None, max_age_days=30)
        assert [d.version for d in plan(session)] == ["1.0", "2.0", "3.0", "4.0"]
        # Both rules: a version goes only if it is old AND not among the 3 newest.
        set_policy(session, Actor.operator(), NAME, keep_last=3, max_age_days=30)
        doomed = plan(session)
        assert [d.version for d in doomed] == ["1.0", "2.0", "3.0"]
        assert doomed[0].reason == "not among the 3 newest and older than 30 days"
        protect(session, Actor.operator(), NAME, "2.0")
        assert [d.version for d in plan(session)] == ["1.0", "3.0"]
        report = apply_retention(session, dry_run=False)
        assert [d.version for d in report.deleted] == ["1.0", "3.0"]
    assert _versions(registry) == ["2.0", "4.0", "5.0", "6.0"]


def test_latest_is_never_deleted_even_when_old(tmp_path, registry_key_file):
    registry = _fresh(tmp_path, registry_key_file, 2)
    with registry.session() as session:
        session.execute(update(Tag).values(created_at=datetime.now(UTC) - timedelta(days=400)))
        session.commit()
        set_policy(session, Actor.operator(), NAME, keep_last=None, max_age_days=1)
        assert [d.version for d in plan(session)] == ["1.0"]  # 2.0 is latest (newest push)


def test_registry_wide_policy_and_repository_override(tmp_path, registry_key_file):
    registry = _fresh(tmp_path, registry_key_file, 5)
    other = "127.0.0.1/demo/other"
    for number in range(1, 4):
        assert registry.upload(other, build_aci(tmp_path / "images", other,
                                                version=f"{number}.0")).status_code == 201
    assert registry.api("PUT", "/retention", json={"keep_last": 2}).status_code == 200
    assert registry.api("PUT", f"/repositories/{NAME}/-/retention",
                        json={"keep_last": 4}).status_code == 200
    mine = registry.api("GET", f"/repositories/{other}/-/retention").get_json()
    assert mine["own"] is None and mine["effective"]["scope"] == "registry"
    doomed = registry.api("GET", "/retention/plan").get_json()["deleted"]
    assert [(d["repository"], d["version"]) for d in doomed] == [(NAME, "1.0"), (other, "1.0")]


def test_policy_errors_and_permissions(fifty):
    bad = fifty.api("PUT", f"/repositories/{NAME}/-/retention", json={"keep_last": 0})
    assert bad.status_code == 400 and "at least 1" in bad.get_json()["error"]["message"]
    wrong = fifty.api("PUT", f"/repositories/{NAME}/-/retention", json={"keep_last": "5"})
    assert wrong.status_code == 400
    anonymous = fifty.api("PUT", "/retention", token=None, json={"keep_last": 3})
    assert anonymous.status_code == 401
    missing = fifty.api("PUT", f"/repositories/{NAME}/-/versions/99.0/protected")
    assert missing.status_code == 404


def test_cli_sets_policy_and_gc_reports_retention(tmp_path, registry_key_file):
    from click.testing import CliRunner

    from registry.cli.registry import main

    registry = _fresh(tmp_path, registry_key_file, 4)
    data_dir = str(registry.config.data_dir)
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(main, ["--data-dir", data_dir, "--database-url",
                                      registry.config.database_url, *args],
                               catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    assert "keep 2 newest" in cli("retention", "set", "--repo", NAME, "--keep", "2")
    assert f"{NAME}:1.0" in cli("retention", "plan")
    cli("repo", "protect", NAME, "1.0")
    assert "1 version(s) would be deleted" in cli("retention", "plan")
    out = cli("gc", "--dry-run")
    assert f"retention: would remove {NAME}:2.0" in out
    out = cli("gc")
    assert f"retention: removed {NAME}:2.0" in out and "retention: removed 1 version(s)" in out
    assert _versions(registry) == ["1.0", "3.0", "4.0"]
    refused = runner.invoke(main, ["--data-dir", data_dir, "--database-url",
                                   registry.config.database_url, "retention", "set", "--keep", "0"])
    assert refused.exit_code == 2 and "0 is not in the range" in refused.output
