"""Every state-changing UI request without a CSRF token, or with a wrong one, is refused (400)
and changes nothing; the same request with the session's token goes through. The same forms
with the right token but sent from another site (by Origin or Referer), or naming no origin
at all, are refused too (403)."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from ui_app import BASE_URL, UiApp, csrf_from, get, login, post
from ui_images import build_aci
from werkzeug.test import TestResponse

from registry.server.models import ApiToken
from registry.signing import generate_key

APP = "127.0.0.1/team/app"


@dataclass
class Form:
    endpoint: str
    path: str
    data: dict[str, Any] = field(default_factory=dict)
    # Raw-body requests (the upload script) carry the token in a header, not a field.
    raw: bytes | None = None
    # None: only the refusals are checked (e.g. generating RSA keys would be slow).
    valid_run: bool = True


def send(client: FlaskClient, form: Form, token: str | None, *, origin: str | None = BASE_URL,
         headers: dict[str, str] | None = None) -> TestResponse:
    headers = dict(headers or {})
    if form.raw is not None:
        headers.update({"Content-Type": "application/octet-stream", "Accept": "application/json"})
        if token is not None:
            headers["X-CSRF-Token"] = token
        return post(client, form.path, data=form.raw, headers=headers, origin=origin)
    data = {k: (io.BytesIO(v[0]), v[1]) if isinstance(v, tuple) else v
            for k, v in form.data.items()}
    if token is not None:
        data["csrf_token"] = token
    multipart = any(isinstance(v, tuple) for v in data.values())
    return post(client, form.path, data=data, headers=headers, origin=origin,
                content_type="multipart/form-data" if multipart else None)


def the_forms(tmp_path: Path) -> list[Form]:
    second = build_aci(tmp_path / "v2", APP, "2.0").read_bytes()
    third = build_aci(tmp_path / "v3", APP, "3.0").read_bytes()
    owner_key = generate_key("owner <owner@127.0.0.1>", cipher="cv25519")
    registry_key = "0" * 40
    return [
        Form("ui.login", "/_ui/login", {"username": "admin", "password": "admin-password-for-tests"}),
        Form("ui.repository_create", "/_ui/repositories", {"name": "team/new", "visibility": "public"}),
        Form("ui.repository_update", "/_ui/r/127.0.0.1/team/new/-/settings",
             {"visibility": "private", "description": "changed"}),
        Form("ui.user_create", "/_ui/users", {"username": "bob", "password": "bob-password"}),
        Form("ui.user_admin", "/_ui/users/bob/admin", {"admin": "1"}),
        Form("ui.repository_role", "/_ui/r/127.0.0.1/team/new/-/roles",
             {"username": "bob", "role": "read"}),
        Form("ui.image_upload", f"/_ui/r/{APP}/-/upload", {"aci": (second, "app-2.0.aci")}),
        Form("ui.image_upload", f"/_ui/r/{APP}/-/upload", raw=third),
        Form("ui.latest_set", f"/_ui/r/{APP}/-/latest", {"version": "2.0"}),
        Form("ui.version_delete", f"/_ui/r/{APP}/-/versions/delete", {"version": "3.0"}),
        Form("ui.repository_key_register", f"/_ui/r/{APP}/-/keys",
             {"armored": owner_key.armored_public()}),
        Form("ui.repository_key_remove", f"/_ui/r/{APP}/-/keys/{owner_key.fingerprint}/remove"),
        Form("ui.repository_description", f"/_ui/r/{APP}/-/description",
             {"description": "**new**"}),
        # Converting needs an OCI tag (tests/ui/test_ui_product.py converts one for real).
        Form("ui.version_convert", f"/_ui/r/{APP}/-/convert",
             {"version": "9.0", "os": "linux", "arch": "amd64"}, valid_run=False),
        Form("ui.robot_create", "/_ui/robots", {"name": "ci-bot", "description": "CI"}),
        Form("ui.robot_role", "/_ui/robots/ci-bot/roles", {"repository": APP, "role": "write"}),
        Form("ui.robot_token_create", "/_ui/robots/ci-bot/tokens",
             {"scope": "push", "repository": APP, "expires": "30"}),
        Form("ui.robot_delete", "/_ui/robots/ci-bot/delete"),
        Form("ui.token_create", "/_ui/account/tokens", {"description": "ci"}),
        Form("ui.token_revoke", ""),  # the path names the token the form before created
        Form("ui.password_change", "/_ui/account/password",
             {"user": "bob", "password": "new-password", "repeat": "new-password"}),
        Form("ui.user_delete", "/_ui/users/bob/delete"),
        Form("ui.repository_delete", "/_ui/r/127.0.0.1/team/new/-/delete",
             {"confirm": "127.0.0.1/team/new"}),
        Form("ui.key_generate", "/_ui/keys/generate", valid_run=False),
        Form("ui.key_rotate", "/_ui/keys/rotate", valid_run=False),
        Form("ui.key_retire", f"/_ui/keys/{registry_key}/retire", valid_run=False),
        Form("ui.retention_set", "/_ui/retention", {"keep_last": "5"}),
        Form("ui.version_protect", "/_ui/retention/protect",
             {"repository": APP, "version": "2.0", "protected": "1"}),
        Form("ui.webhook_create", "/_ui/webhooks",
             {"url": "http://127.0.0.1:9/hook", "event_push": "on"}),
        Form("ui.webhook_enable", "/_ui/webhooks/1/enabled", {"enabled": "0"}),
        Form("ui.webhook_delete", "/_ui/webhooks/1/delete"),
        Form("ui.mirror_add", "/_ui/mirrors", {"prefix": "example.org/apps"}),
        Form("ui.mirror_remove", "/_ui/mirrors/remove", {"prefix": "example.org/apps"}),
        Form("ui.logout", "/_ui/logout"),
    ]


def newest_token_id(ui_app: UiApp) -> int:
    with ui_app.app.extensions["pyrkt"].sessions() as session:
        return session.scalar(select(func.max(ApiToken.id)))


def post_endpoints(ui_app: UiApp) -> set[str]:
    return {rule.endpoint for rule in ui_app.app.url_map.iter_rules()
            if rule.endpoint.startswith("ui.") and "POST" in (rule.methods or set())}


def signed_in(client: FlaskClient) -> bool:
    return get(client, "/_ui/account").status_code == 200


def test_every_form_refuses_missing_and_wrong_csrf_tokens(ui_app: UiApp, tmp_path: Path) -> None:
    client = ui_app.client()
    token = login(client)
    # A real token of another session: well-formed, just not this session's.
    wrong = login(ui_app.client())
    assert wrong != token
    create = send(client, Form("", "/_ui/repositories", {"name": "team/app", "visibility": "public"}),
                  token)
    assert create.status_code == 303
    first = build_aci(tmp_path / "v1", APP, "1.0").read_bytes()
    assert send(client, Form("", f"/_ui/r/{APP}/-/upload", raw=first), token).status_code == 201

    forms = the_forms(tmp_path)
    assert {f.endpoint for f in forms} == post_endpoints(ui_app), "a form is not covered here"
    for form in forms:
        if form.endpoint == "ui.token_revoke":
            form.path = f"/_ui/account/tokens/{newest_token_id(ui_app)}/revoke"
        before = ui_app.rows()
        for sent in (None, wrong, ""):
            answer = send(client, form, sent)
            assert answer.status_code == 400, (form.endpoint, sent, answer.status_code)
            assert "CSRF" in answer.get_data(as_text=True)
            assert ui_app.rows() == before, f"{form.endpoint} changed rows without a valid token"
        assert signed_in(client), f"{form.endpoint} without a token signed the user out"
        if not form.valid_run:
            continue
        answer = send(client, form, token)
        assert answer.status_code in (200, 201, 303), (form.endpoint, answer.status_code)
        if form.endpoint == "ui.login":
            token = csrf_from(get(client, "/"))  # a login starts a new session and token
            continue
        if form.endpoint == "ui.logout":
            assert not signed_in(client)
            continue
        assert ui_app.rows() != before, f"{form.endpoint} with the right token changed nothing"
        flash_errors = [m for m in get(client, "/_ui/keys").get_data(as_text=True).split("\n")
                        if 'class="flash error"' in m]
        assert not flash_errors, (form.endpoint, flash_errors)


@pytest.mark.parametrize("header", [None, "wrong"])
def test_raw_upload_without_the_header_token_stores_nothing(ui_app: UiApp, tmp_path: Path,
                                                           header: str | None) -> None:
    client = ui_app.client()
    token = login(client)
    send(client, Form("", "/_ui/repositories", {"name": "team/app"}), token)
    image = build_aci(tmp_path / "img", APP, "1.0").read_bytes()
    storage_dir = ui_app.config.storage_dir
    assert storage_dir is not None
    stored_before = sorted(str(p) for p in storage_dir.rglob("*") if p.is_file())
    answer = send(client, Form("", f"/_ui/r/{APP}/-/upload", raw=image), header)
    assert answer.status_code == 400
    assert answer.get_json()["message"].startswith("missing or invalid CSRF token")
    assert sorted(str(p) for p in storage_dir.rglob("*") if p.is_file()) == stored_before
    page = get(client, "/team/app").get_data(as_text=True)
    assert 'class="versions"' not in page and "No images yet." in page


def test_signature_header_is_base64(ui_app: UiApp) -> None:
    """A garbled signature header is reported plainly (JSON for the upload script)."""
    client = ui_app.client()
    token = login(client)
    send(client, Form("", "/_ui/repositories", {"name": "team/app"}), token)
    answer = post(client, f"/_ui/r/{APP}/-/upload", data=b"x",
                  headers={"X-CSRF-Token": token, "Accept": "application/json",
                           "Content-Type": "application/octet-stream",
                           "X-Pyrkt-Signature": base64.b64encode(b"sig").decode() + "!"})
    assert answer.status_code == 400
    assert "not base64" in answer.get_json()["message"]


FOREIGN = [
    ({"origin": "http://evil.example"}, "Origin of another site"),
    ({"origin": "null"}, "Origin null (sandboxed frame, file://)"),
    ({"origin": "http://127.0.0.1:8081"}, "Origin on another port"),
    ({"origin": "https://127.0.0.1:8080"}, "Origin with another scheme"),
    ({"origin": None, "headers": {"Referer": "http://evil.example/form.html"}}, "Referer only"),
    ({"origin": None}, "neither Origin nor Referer"),
]


def test_every_form_refuses_requests_from_other_sites_even_with_the_token(ui_app: UiApp,
                                                                          tmp_path: Path) -> None:
    client = ui_app.client()
    token = login(client)
    send(client, Form("", "/_ui/repositories", {"name": "team/app", "visibility": "public"}),
         token)
    send(client, Form("", "/_ui/account/tokens", {"description": "to revoke"}), token)
    forms = the_forms(tmp_path)
    assert {f.endpoint for f in forms} == post_endpoints(ui_app), "a form is not covered here"
    for form in forms:
        if form.endpoint == "ui.token_revoke":
            form.path = f"/_ui/account/tokens/{newest_token_id(ui_app)}/revoke"
        before = ui_app.rows()
        for how, what in FOREIGN:
            answer = send(client, form, token, **how)  # type: ignore[arg-type]
            assert answer.status_code == 403, (form.endpoint, what, answer.status_code)
            assert "cross-site request refused" in answer.get_data(as_text=True)
            assert ui_app.rows() == before, f"{form.endpoint} changed rows: {what}"
        assert signed_in(client)


def test_a_same_site_referer_without_origin_is_enough(ui_app: UiApp) -> None:
    client = ui_app.client()
    token = login(client)
    answer = send(client, Form("", "/_ui/repositories", {"name": "team/ref", "visibility": "public"}),
                  token, origin=None, headers={"Referer": f"{BASE_URL}/_ui/repositories/new"})
    assert answer.status_code == 303
