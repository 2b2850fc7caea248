"""The web UI in a real browser (Playwright driving Debian's chromium) against a live gunicorn
registry: publish through the forms, fetch with the client, privacy, sessions, administration.
Screenshots of the main pages go to test-output/screenshots/."""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from browser_kit import launch, new_page, run_shown_command, screenshot, sign_in, sign_out
from live_registry import LiveRegistry
from playwright.sync_api import Browser, Page, expect, sync_playwright
from ui_images import build_aci

from registry.aci import image_id_of, short_id
from registry.signing import generate_key, sign_detached

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRegistry]:
    with LiveRegistry(tmp_path_factory.mktemp("ui-registry")) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def admin_page(browser: Browser, registry: LiveRegistry) -> Iterator[Page]:
    page = new_page(browser)
    sign_in(page, registry.base_url, registry.admin, registry.admin_password)
    yield page
    page.context.close()


def create_repository(page: Page, path: str, description: str, *, private: bool = False) -> None:
    page.goto(page.url.split("/", 3)[0] + "//" + page.url.split("/", 3)[2] + "/")
    page.get_by_role("link", name="New repository").click()
    page.get_by_label("Name under the domain").fill(path)
    page.get_by_label("Description").fill(description)
    if private:
        page.get_by_label("Private", exact=False).check()
    page.get_by_role("button", name="Create repository").click()
    expect(page.get_by_text("created. Upload its first image below.")).to_be_visible()


def upload(page: Page, aci: Path) -> None:
    page.get_by_label("ACI file").set_input_files(str(aci))
    page.get_by_role("button", name="Upload").click()


def test_publish_through_the_ui_then_fetch_with_pyrkt(admin_page: Page, registry: LiveRegistry,
                                                      tmp_path: Path, actool: str) -> None:
    page = admin_page
    screenshot(page, "01-home-empty")
    create_repository(page, "team/web", "The team's web server.")
    expect(page.get_by_text("No images yet.")).to_be_visible()
    screenshot(page, "02-repository-empty")

    aci = build_aci(tmp_path / "build", "127.0.0.1/team/web", "1.0")
    upload(page, aci)
    expect(page.get_by_text("Uploaded 127.0.0.1/team/web:1.0 for linux/amd64")).to_be_visible()
    row = page.locator("table.versions tbody tr").first
    with aci.open("rb") as handle:
        expected_id = short_id(image_id_of(handle))
    for text in ("1.0", "latest", "linux/amd64", expected_id, "registry key"):
        expect(row).to_contain_text(text)
    page.get_by_text("Manifest of 1.0 (linux/amd64)").click()
    expect(page.locator("pre.manifest").first).to_contain_text('"name": "127.0.0.1/team/web"')
    screenshot(page, "03-repository-with-image")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "03b-repository-on-a-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # The commands the page shows, run exactly as shown, fetch the image just uploaded.
    trust = page.locator("#trust-command").inner_text()
    fetch = page.locator("#fetch-command").inner_text()
    assert fetch.endswith(" 127.0.0.1/team/web:1.0") and f"--port={registry.port}" in fetch
    client_dir = tmp_path / "client"
    trusted = run_shown_command(trust, client_dir, answer="y\n")
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    fetched = run_shown_command(fetch, client_dir)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert fetched.stdout.strip().splitlines()[-1] == expected_id

    # The page is served on the discovery URL and still answers appc's reference tool.
    discovered = subprocess.run([actool, "discover", "--insecure", f"--port={registry.port}",
                                 "127.0.0.1/team/web:1.0"], capture_output=True, text=True, timeout=60)
    assert discovered.returncode == 0, discovered.stdout + discovered.stderr
    assert f"{registry.base_url}/_aci/127.0.0.1/team/web/1.0/linux/amd64/image.aci" in discovered.stdout
    html = requests.get(registry.url("/team/web"), timeout=10).text
    assert '<meta name="ac-discovery" content="127.0.0.1/team/web ' in html


def test_a_refused_upload_shows_the_registry_message(admin_page: Page, registry: LiveRegistry,
                                                     tmp_path: Path) -> None:
    page = admin_page
    create_repository(page, "team/api", "Refusals.")
    wrong_name = build_aci(tmp_path / "wrong", "127.0.0.1/team/other", "1.0")
    upload(page, wrong_name)
    status = page.locator("#upload-status")
    expect(status).to_contain_text("Upload refused: image name '127.0.0.1/team/other' does "
                                   "not match repository '127.0.0.1/team/api'")
    screenshot(page, "04-upload-refused")
    garbage = tmp_path / "garbage.aci"
    garbage.write_bytes(b"this is not a tar archive at all\n" * 100)
    upload(page, garbage)
    expect(status).to_contain_text("Upload refused: invalid ACI")
    page.reload()
    expect(page.get_by_text("No images yet.")).to_be_visible()


def test_large_upload_shows_progress(admin_page: Page, tmp_path: Path) -> None:
    page = admin_page
    create_repository(page, "team/big", "A larger image.")
    big = build_aci(tmp_path / "big", "127.0.0.1/team/big", "1.0", padding=16 * 1024 * 1024)
    # Slow the browser's uploads down (DevTools throttling) so the progress is observable.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1,
        "uploadThroughput": 8 * 1024 * 1024})
    upload(page, big)
    page.wait_for_function("() => { const p = document.getElementById('upload-progress');"
                           " return p && !p.hidden && p.value > 0 && p.value < 100; }")
    screenshot(page, "04c-upload-progress")
    expect(page.get_by_text("Uploaded 127.0.0.1/team/big:1.0")).to_be_visible(timeout=60_000)
    expect(page.locator("table.versions")).to_contain_text("16.0 MiB")


def test_owner_key_and_a_signed_upload_dropped_on_the_form(admin_page: Page, registry: LiveRegistry,
                                                          tmp_path: Path) -> None:
    page = admin_page
    create_repository(page, "team/signed", "Signed by its owner.")
    owner = generate_key("team owner <owner@127.0.0.1>", cipher="cv25519")
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Armored public key").fill(owner.armored_public())
    page.get_by_role("button", name="Register key").click()
    expect(page.get_by_text("1 key(s) registered")).to_be_visible()
    expect(page.locator("ul.keys")).to_contain_text(owner.fingerprint[:4])
    page.get_by_role("link", name="← 127.0.0.1/team/signed").click()

    aci = build_aci(tmp_path / "signed", "127.0.0.1/team/signed", "1.0")
    signature = sign_detached(owner, aci).decode()
    # Drag-and-drop: both files dropped on the zone land in their fields.
    dropped = page.evaluate_handle(
        """([data, signature, name]) => {
             const transfer = new DataTransfer();
             const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
             transfer.items.add(new File([bytes], name));
             transfer.items.add(new File([signature], name + ".asc"));
             return transfer;
           }""", [base64.b64encode(aci.read_bytes()).decode(), signature, aci.name])
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": dropped})
    expect(page.locator("#upload-status")).to_contain_text(f"Ready: {aci.name} with {aci.name}.asc")
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_text(f"signed by {owner.fingerprint[-16:]}")).to_be_visible()
    expect(page.locator("table.versions tbody tr").first).to_contain_text("repository key")
    served = requests.get(registry.url("/_aci/127.0.0.1/team/signed/1.0/linux/amd64/image.aci.asc"),
                          timeout=10)
    assert served.text == signature


def test_upload_without_javascript_uses_the_plain_form(browser: Browser, registry: LiveRegistry,
                                                       tmp_path: Path) -> None:
    page = new_page(browser, javascript=False)
    sign_in(page, registry.base_url, registry.admin, registry.admin_password)
    create_repository(page, "team/nojs", "Works without JavaScript.")
    upload(page, build_aci(tmp_path / "nojs", "127.0.0.1/team/nojs", "0.1", os_name=None, arch=None))
    expect(page.locator("p.flash.error")).to_contain_text("manifest lacks the os and arch label(s)")
    screenshot(page, "04b-upload-refused-without-javascript")
    upload(page, build_aci(tmp_path / "ok", "127.0.0.1/team/nojs", "0.2"))
    expect(page.get_by_text("Uploaded 127.0.0.1/team/nojs:0.2")).to_be_visible()
    expect(page.locator("table.versions")).to_contain_text("0.2")
    page.context.close()


def test_private_repositories_and_signing_out(admin_page: Page, browser: Browser,
                                              registry: LiveRegistry) -> None:
    page = admin_page
    create_repository(page, "team/secret", "Only for the team.")
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Private").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Settings saved.")).to_be_visible()
    screenshot(page, "05-repository-settings")
    page.goto(registry.url("/"))
    expect(page.locator("ul.repositories")).to_contain_text("127.0.0.1/team/secret")
    screenshot(page, "06-home-signed-in")

    sign_out(page)
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Sign in")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("team/secret")
    page.goto(registry.url("/?q=secret"))
    expect(page.locator("main")).not_to_contain_text("127.0.0.1/team/secret")
    assert page.goto(registry.url("/team/secret")).status == 404
    # Signed out means signed out: the account page sends the browser to the login form.
    page.goto(registry.url("/_ui/account"))
    expect(page).to_have_url(re.compile(r"/_ui/login\?next="))

    # A stranger's fresh browser sees nothing either.
    stranger = new_page(browser)
    assert stranger.goto(registry.url("/team/secret")).status == 404
    stranger.goto(registry.url("/"))
    expect(stranger.locator("main")).not_to_contain_text("team/secret")
    screenshot(stranger, "07-home-anonymous")
    stranger.context.close()


def test_users_roles_tokens_keys_and_audit(admin_page: Page, browser: Browser,
                                           registry: LiveRegistry) -> None:
    page = admin_page
    create_repository(page, "team/shared", "Shared with bob.", private=True)
    page.get_by_role("link", name="Users").click()
    page.get_by_label("User name").fill("bob")
    page.get_by_label("Password").fill("bob-password-1")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_text("User bob created.")).to_be_visible()
    screenshot(page, "08-users")

    page.goto(registry.url("/_ui/r/127.0.0.1/team/shared/-/settings"))
    page.get_by_label("User name").fill("bob")
    page.get_by_label("Role", exact=True).select_option("read")
    page.get_by_role("button", name="Set role").click()
    expect(page.locator("table")).to_contain_text("bob")

    bob = new_page(browser)
    sign_in(bob, registry.base_url, "bob", "bob-password-1")
    expect(bob.locator("ul.repositories")).to_contain_text("127.0.0.1/team/shared")
    bob.goto(registry.url("/team/shared"))
    expect(bob.locator("h1")).to_contain_text("127.0.0.1/team/shared")
    expect(bob.get_by_role("link", name="Settings")).to_have_count(0)
    expect(bob.get_by_role("heading", name="Upload an image")).to_have_count(0)

    # API tokens: shown once, work against the API, stop working once revoked.
    bob.get_by_role("link", name="bob").click()
    bob.get_by_label("Description").fill("laptop")
    bob.get_by_role("button", name="Create token").click()
    token = bob.locator("#new-token").inner_text().strip()
    assert token.startswith("pyrkt_")
    screenshot(bob, "09-token-created")
    whoami = registry.api("GET", "/whoami", token=token)
    assert whoami.status_code == 200 and whoami.json()["username"] == "bob"
    bob.goto(registry.url("/_ui/account"))
    expect(bob.locator("main")).not_to_contain_text(token)
    bob.get_by_role("button", name="Revoke").click()
    expect(bob.get_by_text("revoked; it no longer works")).to_be_visible()
    assert registry.api("GET", "/whoami", token=token).status_code == 401
    bob.context.close()

    page.get_by_role("link", name="Signing keys").click()
    expect(page.locator("code.fingerprint").first).to_be_visible()
    expect(page.locator("table")).to_contain_text("active")
    screenshot(page, "10-signing-keys")
    page.get_by_role("link", name="Audit log").click()
    for action in ("repository.create", "user.create", "role.set", "token.create", "token.revoke"):
        expect(page.locator("table.audit")).to_contain_text(action)
    screenshot(page, "11-audit-log")
