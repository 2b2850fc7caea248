"""The Operations page: retention policies and protection, webhooks with their delivery log
(response codes), mirrors; administrators only; every value reaches the services' tables."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select
from ui_app import UiApp, get, login, post
from ui_images import build_aci

from registry.server.operations.models import Mirror, RetentionPolicy, Webhook
from registry.server.operations.webhooks import deliver_due

APP = "127.0.0.1/team/ops"


def _rows(ui_app: UiApp, model):  # type: ignore[no-untyped-def]
    with ui_app.app.extensions["pyrkt"].sessions() as session:
        return session.scalars(select(model)).all()


def test_page_is_for_administrators_only(ui_app: UiApp) -> None:
    anonymous = get(ui_app.client(), "/_ui/operations")
    assert anonymous.status_code in (302, 303, 401, 403)
    client = ui_app.client()
    login(client)
    page = get(client, "/_ui/operations")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for heading in ("Retention", "Webhooks", "Pull-through mirrors"):
        assert heading in text
    assert "/_mirror" in text  # the domains.d line hosts need


def test_retention_forms_set_policies_and_show_the_plan(ui_app: UiApp, tmp_path: Path) -> None:
    client = ui_app.client()
    token = login(client)
    for version in ("1.0", "2.0", "3.0"):
        aci = build_aci(tmp_path / version, APP, version).read_bytes()
        answer = post(client, f"/_ui/r/{APP}/-/upload", data=aci, headers={
            "Content-Type": "application/octet-stream", "Accept": "application/json",
            "X-CSRF-Token": token}) if version != "1.0" else None
        if answer is None:
            assert post(client, "/_ui/repositories", data={
                "csrf_token": token, "name": "team/ops", "visibility": "public"}).status_code == 303
            answer = post(client, f"/_ui/r/{APP}/-/upload", data=aci, headers={
                "Content-Type": "application/octet-stream", "Accept": "application/json",
                "X-CSRF-Token": token})
        assert answer.status_code == 201, answer.get_data(as_text=True)
    saved = post(client, "/_ui/retention", data={"csrf_token": token, "repository": APP,
                                                 "keep_last": "1"})
    assert saved.status_code == 303
    [policy] = _rows(ui_app, RetentionPolicy)
    assert policy.keep_last == 1 and policy.max_age_days is None
    assert post(client, "/_ui/retention/protect", data={
        "csrf_token": token, "repository": APP, "version": "1.0", "protected": "1"}).status_code == 303
    page = get(client, "/_ui/operations").get_data(as_text=True)
    assert f"{APP}:2.0" in page and f"{APP}:1.0" not in page.split("What the next gc")[1]
    assert "not among the 1 newest" in page
    bad = post(client, "/_ui/retention", data={"csrf_token": token, "keep_last": "ten"})
    assert bad.status_code == 303
    assert "give a whole number" in get(client, "/_ui/operations").get_data(as_text=True)


def test_webhook_forms_and_delivery_log_with_answers(ui_app: UiApp, tmp_path: Path) -> None:
    client = ui_app.client()
    token = login(client)
    created = post(client, "/_ui/webhooks", data={
        "csrf_token": token, "url": "http://127.0.0.1:9/nobody", "event_push": "on",
        "description": "deploys"})
    assert created.status_code == 303 and "secret=" in created.headers["Location"]
    [hook] = _rows(ui_app, Webhook)
    assert hook.events == ["push"] and hook.description == "deploys"
    shown = get(client, created.headers["Location"]).get_data(as_text=True)
    assert hook.secret in shown
    assert hook.secret not in get(client, "/_ui/operations").get_data(as_text=True)
    assert post(client, "/_ui/repositories", data={
        "csrf_token": token, "name": "team/ops", "visibility": "public"}).status_code == 303
    aci = build_aci(tmp_path / "v", APP, "1.0").read_bytes()
    assert post(client, f"/_ui/r/{APP}/-/upload", data=aci, headers={
        "Content-Type": "application/octet-stream", "Accept": "application/json",
        "X-CSRF-Token": token}).status_code == 201
    deliver_due(ui_app.app.extensions["pyrkt"].sessions, retry_base=0.01, timeout=2)
    time.sleep(0.05)
    deliver_due(ui_app.app.extensions["pyrkt"].sessions, retry_base=0.01, timeout=2)
    log = get(client, f"/_ui/webhooks/{hook.id}").get_data(as_text=True)
    assert "pending" in log and "no answer" in log and "ConnectionError" in log
    assert post(client, f"/_ui/webhooks/{hook.id}/enabled", data={
        "csrf_token": token, "enabled": "0"}).status_code == 303
    assert _rows(ui_app, Webhook)[0].enabled is False
    assert post(client, f"/_ui/webhooks/{hook.id}/delete",
                data={"csrf_token": token}).status_code == 303
    assert _rows(ui_app, Webhook) == []


def test_mirror_forms(ui_app: UiApp) -> None:
    client = ui_app.client()
    token = login(client)
    assert post(client, "/_ui/mirrors", data={"csrf_token": token, "prefix": "example.org/apps",
                                              "port": "8443", "allow_http": "on"}).status_code == 303
    [row] = _rows(ui_app, Mirror)
    assert (row.prefix, row.port, row.allow_http) == ("example.org/apps", 8443, True)
    refused = post(client, "/_ui/mirrors", data={"csrf_token": token, "prefix": "127.0.0.1/x"})
    assert refused.status_code == 303
    assert "hosts itself" in get(client, "/_ui/operations").get_data(as_text=True)
    assert post(client, "/_ui/mirrors/remove", data={
        "csrf_token": token, "prefix": "example.org/apps"}).status_code == 303
    assert _rows(ui_app, Mirror) == []
