"""The UI's pages and rules on Flask's test client: discovery tags on the human page, search,
privacy, sessions and cookies, versions and `latest`, signing keys."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from sqlalchemy import select
from ui_app import UiApp, csrf_from, get, login, make_ui_app, post
from ui_images import build_aci

from registry.server.models import KeyStatus, SigningKey

APP = "127.0.0.1/team/app"


def make_repository(client, token: str, path: str, *, private: bool = False) -> None:  # type: ignore[no-untyped-def]
    answer = post(client, "/_ui/repositories", data={
        "csrf_token": token, "name": path, "visibility": "private" if private else "public"})
    assert answer.status_code == 303, answer.get_data(as_text=True)


def upload(client, token: str, name: str, aci: Path):  # type: ignore[no-untyped-def]
    return post(client, f"/_ui/r/{name}/-/upload", content_type="multipart/form-data",
                data={"csrf_token": token, "aci": (io.BytesIO(aci.read_bytes()), aci.name)})


def test_the_human_page_and_discovery_share_one_url(ui_app: UiApp, tmp_path: Path) -> None:
    client = ui_app.client()
    token = login(client)
    make_repository(client, token, "team/app")
    upload(client, token, APP, build_aci(tmp_path, APP, "1.0"))
    anonymous = ui_app.client()
    page = get(anonymous, "/team/app").get_data(as_text=True)
    tag = '<meta name="ac-discovery" content="127.0.0.1/team/app http://127.0.0.1:8080/_aci/'
    assert tag in page and "ac-discovery-pubkeys" in page
    assert "pyrkt fetch --insecure-options=http --port=8080 127.0.0.1/team/app:1.0" in page
    assert "pyrkt trust --prefix 127.0.0.1/team/app --insecure-allow-http --port=8080" in page
    machine = get(anonymous, "/team/app?ac-discovery=1").get_data(as_text=True)
    assert tag in machine and "<table" not in machine
    # Parents carry tags too (the client's walk-up), and the root is the home page.
    home = get(anonymous, "/").get_data(as_text=True)
    assert '<meta name="ac-discovery" content="127.0.0.1 ' in home and APP in home


def test_pages_on_a_registry_host_that_is_not_the_domain(tmp_path: Path,
                                                         registry_key_file: Path) -> None:
    """Serving example.com's names from 127.0.0.1: pages and links carry the full name."""
    ui_app = make_ui_app(tmp_path / "data", registry_key_file, domains="example.com")
    client = ui_app.client()
    token = login(client)
    created = post(client, "/_ui/repositories", data={"csrf_token": token, "name": "team/app",
                                                      "domain": "example.com"})
    assert created.location == "/example.com/team/app"
    page = get(client, "/example.com/team/app").get_data(as_text=True)
    assert '<meta name="ac-discovery" content="example.com/team/app ' in page
    assert "pyrkt fetch --insecure-options=http example.com/team/app" in page  # no --port
    home = get(client, "/_ui/").get_data(as_text=True)
    assert 'href="/example.com/team/app"' in home and 'href="/_ui/"' in home


def test_search_and_privacy(ui_app: UiApp) -> None:
    client = ui_app.client()
    token = login(client)
    for path in ("team/web", "team/db", "ops/tools"):
        make_repository(client, token, path)
    make_repository(client, token, "team/secret", private=True)
    anonymous = ui_app.client()
    found = get(anonymous, "/?q=team").get_data(as_text=True)
    assert "127.0.0.1/team/web" in found and "127.0.0.1/team/db" in found
    assert "ops/tools" not in found and "secret" not in found
    assert "No repository name contains" in get(anonymous, "/?q=nothing").get_data(as_text=True)
    assert get(anonymous, "/team/secret").status_code == 404
    assert get(anonymous, "/team").status_code == 200  # lists team/web and team/db
    assert "127.0.0.1/team/secret" in get(client, "/?q=secret").get_data(as_text=True)
    # Scripts read the same pages with an API token (shown once, on the page that made it).
    made = post(client, "/_ui/account/tokens", data={"csrf_token": token, "description": "ci"})
    api_token = re.search(r'id="new-token">(pyrkt_[^<]+)<', made.get_data(as_text=True))
    assert api_token is not None
    assert get(client, "/_ui/account").get_data(as_text=True).count(api_token[1]) == 0
    bearer = {"Authorization": f"Bearer {api_token[1]}"}
    assert get(anonymous, "/team/secret", headers=bearer).status_code == 200
    # Admin pages need a session; an outsider is sent to the login form.
    for path in ("/_ui/users", "/_ui/audit", "/_ui/account", "/_ui/repositories/new"):
        answer = get(anonymous, path)
        assert answer.status_code == 303 and answer.location.startswith("/_ui/login?next=")
    assert get(anonymous, f"/_ui/r/{APP.rsplit('/', 1)[0]}/secret/-/settings").status_code == 303


def test_login_failures_cookies_and_redirects(ui_app: UiApp) -> None:
    client = ui_app.client()
    token = csrf_from(get(client, "/_ui/login"))
    wrong = post(client, "/_ui/login", data={"csrf_token": token, "username": "admin",
                                              "password": "not it"})
    assert wrong.status_code == 401 and "Wrong user name or password." in wrong.get_data(as_text=True)
    answer = post(client, "/_ui/login", data={"csrf_token": token, "username": "admin",
                                               "password": "admin-password-for-tests",
                                               "next": "//evil.example/"})
    assert answer.status_code == 303 and answer.location == "/"  # no open redirect
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # The session's CSRF token changed at login: the one from before no longer works.
    assert csrf_from(get(client, "/")) != token
    assert post(client, "/_ui/logout", data={"csrf_token": token}).status_code == 400


def test_a_signed_out_upload_script_is_told_to_sign_in(ui_app: UiApp) -> None:
    client = ui_app.client()
    token = csrf_from(get(client, "/_ui/login"))
    answer = post(client, f"/_ui/r/{APP}/-/upload", data=b"aci bytes",
                  headers={"X-CSRF-Token": token, "Accept": "application/json",
                           "Content-Type": "application/octet-stream"})
    assert answer.status_code == 401
    assert answer.get_json()["message"] == "you are signed out: sign in again, then retry"


def test_administration_pages_refuse_ordinary_users(ui_app: UiApp) -> None:
    admin = ui_app.client()
    token = login(admin)
    post(admin, "/_ui/users", data={"csrf_token": token, "username": "bob",
                                    "password": "bob-password"})
    make_repository(admin, token, "team/app")
    bob = ui_app.client()
    bob_token = login(bob, "bob", "bob-password")
    for path in ("/_ui/users", "/_ui/audit", "/_ui/repositories/new"):
        assert get(bob, path).status_code == 403, path
    assert get(bob, f"/_ui/r/{APP}/-/settings").status_code == 403
    before = ui_app.rows()
    refused = post(bob, f"/_ui/r/{APP}/-/delete", data={"csrf_token": bob_token, "confirm": APP},
                   headers={"Referer": "http://127.0.0.1:8080/team/app"})
    assert refused.status_code == 303 and ui_app.rows() == before
    assert "you need the admin role" in get(bob, "/team/app").get_data(as_text=True)


def test_a_password_change_signs_out_the_other_browsers(ui_app: UiApp) -> None:
    laptop, phone = ui_app.client(), ui_app.client()
    token = login(laptop)
    login(phone)
    answer = post(laptop, "/_ui/account/password", data={
        "csrf_token": token, "current": "admin-password-for-tests",
        "password": "a-new-password", "repeat": "a-new-password"})
    assert answer.status_code == 303
    assert get(laptop, "/_ui/account").status_code == 200
    assert get(phone, "/_ui/account").status_code == 303  # back to the login form
    login(phone, password="a-new-password")


def test_versions_latest_and_delete(ui_app: UiApp, tmp_path: Path) -> None:
    client = ui_app.client()
    token = login(client)
    make_repository(client, token, "team/app")
    for version in ("1.0", "2.0"):
        assert upload(client, token, APP, build_aci(tmp_path / version, APP, version)).status_code == 303
    page = get(client, "/team/app").get_data(as_text=True)
    assert page.count('class="badge latest"') == 1
    assert "pyrkt fetch --insecure-options=http --port=8080 127.0.0.1/team/app:2.0" in page
    post(client, f"/_ui/r/{APP}/-/latest", data={"csrf_token": token, "version": "1.0"})
    page = get(client, "/team/app").get_data(as_text=True)
    assert "latest is pinned to 1.0" in page and "127.0.0.1/team/app:1.0</code>" in page
    answer = post(client, f"/_ui/r/{APP}/-/versions/delete",
                  data={"csrf_token": token, "version": "1.0", "os": "linux", "arch": "amd64"})
    assert answer.status_code == 303
    page = get(client, "/team/app").get_data(as_text=True)
    assert "Deleted 127.0.0.1/team/app:1.0" in page and ">1.0</strong>" not in page
    # A refused action is explained where it was asked for.
    post(client, f"/_ui/r/{APP}/-/latest", data={"csrf_token": token, "version": "9.9"},
         headers={"Referer": "http://127.0.0.1:8080/team/app"})
    assert "has no version &#39;9.9&#39;" in get(client, "/team/app").get_data(as_text=True)


@pytest.mark.slow  # rotating generates an RSA 4096 key
def test_rotating_and_retiring_signing_keys(ui_app: UiApp) -> None:
    client = ui_app.client()
    token = login(client)
    before = get(client, "/_ui/keys").get_data(as_text=True)
    assert before.count('class="badge active"') == 1
    post(client, "/_ui/keys/rotate", data={"csrf_token": token})
    after = get(client, "/_ui/keys").get_data(as_text=True)
    assert after.count('class="badge active"') == 1 and after.count('class="badge retired"') == 1
    with ui_app.app.extensions["pyrkt"].sessions() as session:
        active = session.scalars(select(SigningKey.fingerprint)
                                 .where(SigningKey.status == KeyStatus.ACTIVE)).one()
    post(client, f"/_ui/keys/{active}/retire", data={"csrf_token": token},
         headers={"Referer": "http://127.0.0.1:8080/_ui/keys"})
    assert "only active signing key" in get(client, "/_ui/keys").get_data(as_text=True)


def test_a_password_change_ends_other_sessions_for_downloads_and_pages_too(
        ui_app: UiApp, tmp_path: Path) -> None:
    """The session proof is checked by every session-authenticated path, not only the UI's:
    an old cookie no longer reads a private repository's page or image (discovery's meta
    tags answer every name alike, by design)."""
    laptop, phone = ui_app.client(), ui_app.client()
    token = login(laptop)
    make_repository(laptop, token, "team/secret", private=True)
    name = "127.0.0.1/team/secret"
    assert upload(laptop, token, name, build_aci(tmp_path, name, "1.0")).status_code == 303
    login(phone)
    image = "/_aci/127.0.0.1/team/secret/1.0/linux/amd64/image.aci"
    paths = (image, "/team/secret")  # the download first: a page clears a stale session
    assert [get(phone, path).status_code for path in paths] == [200, 200]
    answer = post(laptop, "/_ui/account/password", data={
        "csrf_token": token, "current": "admin-password-for-tests",
        "password": "a-new-password", "repeat": "a-new-password"})
    assert answer.status_code == 303
    assert [get(phone, path).status_code for path in paths] == [404, 404]
    assert [get(laptop, path).status_code for path in paths] == [200, 200]
