"""The registry as a product, in a real browser (Playwright driving Debian's chromium) against
a live gunicorn registry: every version however it arrived (appc upload, OCI push with
skopeo), the per-version commands run as shown, scoped tokens and robot accounts (over the
API and over /v2/ with skopeo), pull counts and the server-drawn chart with scripts off, safe
Markdown descriptions, the audit log at 1280 px with filters and exports, and full image
names in the path. Screenshots at 1280x900 and 390x844 go to test-output/screenshots/."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import oci_images
import pytest
import requests
from browser_kit import launch, new_page, run_shown_command, screenshot, sign_in
from live_registry import LiveRegistry
from playwright.sync_api import Browser, Page, expect, sync_playwright
from ui_images import build_aci

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

NAME = "127.0.0.1/demo/hello"
OTHER = "127.0.0.1/demo/other"
DESCRIPTION = "The **hello** image: prints a greeting.\n\n- tiny\n- signed by the registry\n"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def skopeo(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    policy = Path(os.environ.get("TMPDIR", "/tmp")) / "pyrkt-skopeo-policy.json"
    if not policy.exists():
        policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    return subprocess.run(["skopeo", "--policy", str(policy), *args], capture_output=True,
                          text=True, timeout=180, cwd=cwd)


def oci_push(registry: LiveRegistry, image: oci_images.OCIImage, target: str,
             creds: str) -> subprocess.CompletedProcess[str]:
    return skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", creds,
                  f"oci:{image.layout}:{image.tag}", f"docker://127.0.0.1:{registry.port}/{target}")


def upload(registry: LiveRegistry, name: str, aci: Path, token: str | None = ""
           ) -> requests.Response:
    return registry.api("POST", f"/repositories/{name}/-/images", token=token,
                        data=aci.read_bytes(),
                        headers={"Content-Type": "application/octet-stream"})


def commands_of(row) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """tool -> command line, as the version's command list shows them."""
    details = row.locator("details.commands")
    details.evaluate("d => { d.open = true; }")
    tools = [t.inner_text().strip() for t in details.locator("dt").all()]
    lines = [c.inner_text().strip() for c in details.locator("dd code").all()]
    return dict(zip(tools, lines, strict=True))


def clipboard(page: Page) -> str:
    return page.evaluate("() => navigator.clipboard.readText()")


def wait_for(condition, timeout: float = 60.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def both_sizes(page: Page, name: str) -> None:
    """Screenshots at 1280x900 and at 390x844 (a phone); leaves the page at 1280x900."""
    page.set_viewport_size(DESKTOP)
    screenshot(page, f"{name}-1280")
    page.set_viewport_size(PHONE)
    screenshot(page, f"{name}-390")
    page.set_viewport_size(DESKTOP)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRegistry]:
    # Pull counts are written every second here (5 s by default) so the tests wait less.
    with LiveRegistry(tmp_path_factory.mktemp("product-registry"),
                      env={"PYRKT_REGISTRY_PULL_FLUSH_SECONDS": "1"}) as live:
        yield live


@pytest.fixture(scope="module")
def demo(registry: LiveRegistry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """demo/hello with an appc upload (1.0) and two OCI pushes (2.0, 3.0; 3.0 fetched once,
    which converts it), and demo/other."""
    work = tmp_path_factory.mktemp("demo")
    for name in (NAME, OTHER):
        created = registry.api("POST", "/repositories", json={"name": name,
                                                             "description": DESCRIPTION})
        assert created.status_code == 201, created.text
    assert upload(registry, NAME, build_aci(work / "aci", NAME, "1.0")).status_code == 201
    layout = oci_images.write_oci_layout(work / "layout", oci_images.sample_layers(), tag="2.0")
    creds = f"admin:{registry.token}"
    for tag in ("2.0", "3.0"):
        pushed = oci_push(registry, layout, f"demo/hello:{tag}", creds)
        assert pushed.returncode == 0, pushed.stderr + registry.log()
    converted = requests.get(registry.url(f"/_aci/{NAME}/3.0/linux/amd64/image.aci"), timeout=120)
    assert converted.status_code == 200, converted.text
    return {"layout": layout, "work": work}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def admin_page(browser: Browser, registry: LiveRegistry) -> Iterator[Page]:
    page = new_page(browser)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"],
                                   origin=registry.base_url)
    sign_in(page, registry.base_url, registry.admin, registry.admin_password)
    yield page
    page.context.close()


def version_row(page: Page, version: str):  # type: ignore[no-untyped-def]
    return page.locator(f'tr.version[data-version="{version}"]')


# -- 1. every version, however it arrived; conversion by button or first fetch -----------------
def test_every_version_is_listed_at_once_and_converts(admin_page: Page, registry: LiveRegistry,
                                                      demo: dict[str, object]) -> None:
    api = registry.api("GET", f"/repositories/{NAME}").json()
    states = {v["version"]: (v["source"], v["state"]) for v in api["versions"]}
    assert states == {"1.0": ("appc", "ready"), "2.0": ("oci", "not-converted"),
                      "3.0": ("oci", "ready")}
    page = admin_page
    page.goto(registry.url("/demo/hello"))
    expect(version_row(page, "2.0")).to_contain_text("not converted")
    expect(version_row(page, "2.0")).to_contain_text("OCI push")
    expect(version_row(page, "3.0")).to_contain_text("OCI push")
    expect(version_row(page, "1.0")).to_contain_text("ACI")
    version_row(page, "2.0").get_by_role("button", name="Convert now").click()
    expect(page.get_by_text("Converting 127.0.0.1/demo/hello:2.0 for linux/amd64")).to_be_visible()

    def ready() -> bool:
        page.goto(registry.url("/demo/hello"))
        return version_row(page, "2.0").get_attribute("data-state") == "ready"

    wait_for(ready, what="2.0 converted by the button")
    expect(version_row(page, "2.0")).to_contain_text("sha512-")
    listed = registry.api("GET", f"/repositories/{NAME}/-/versions").json()["versions"]
    assert {v["version"]: v["state"] for v in listed} == {"1.0": "ready", "2.0": "ready",
                                                         "3.0": "ready"}
    # The conversions are the registry's own doing, and say what triggered them.
    events = registry.api("GET", "/audit", params={"user": "(system)"}).json()["events"]
    causes = sorted(e["triggered_by"] for e in events)
    assert causes == [f"convert request for {NAME}:2.0 by admin",
                      f"first fetch of {NAME}:3.0 by an anonymous client"], causes
    assert {e["actor_kind"] for e in events} == {"system"}


# -- 7. a full image name in the path ----------------------------------------------------------
def test_a_full_image_name_in_the_path_finds_the_repository(browser: Browser,
                                                           registry: LiveRegistry,
                                                           demo: dict[str, object]) -> None:
    page = new_page(browser)
    page.goto(registry.url("/127.0.0.1/demo/hello"))
    expect(page).to_have_url(registry.url("/demo/hello"))
    expect(page.locator("h1")).to_contain_text(NAME)
    assert page.goto(registry.url("/127.0.0.1/demo/missing")).status == 404
    page.context.close()


# -- 2. copyable commands, run as shown -----------------------------------------------------------
def test_version_commands_run_as_shown(admin_page: Page, registry: LiveRegistry,
                                       demo: dict[str, object], tmp_path: Path) -> None:
    page = admin_page
    page.goto(registry.url("/demo/hello"))
    port = registry.port
    commands_row = version_row(page, "2.0").locator("xpath=following-sibling::tr[1]")
    by_tool = commands_of(commands_row)
    assert list(by_tool) == ["pyrkt fetch", "pyrkt run", "rkt fetch", "skopeo", "docker"]
    assert by_tool["pyrkt fetch"] == (f"pyrkt fetch --insecure-options=http --port={port} "
                                      f"{NAME}:2.0")
    assert by_tool["pyrkt run"] == (by_tool["pyrkt fetch"]
                                    + f" && pyrkt run --insecure-options=http {NAME}:2.0")
    assert by_tool["rkt fetch"] == (f"rkt fetch --insecure-options=http http://127.0.0.1:{port}"
                                    f"/_aci/{NAME}/2.0/linux/amd64/image.aci")
    assert by_tool["skopeo"] == (f"skopeo copy --src-tls-verify=false "
                                      f"docker://127.0.0.1:{port}/demo/hello:2.0 oci:hello:2.0")
    # Loopback: docker needs no insecure-registries entry, so the page adds no note.
    assert by_tool["docker"] == f"docker pull 127.0.0.1:{port}/demo/hello:2.0"
    expect(commands_row.locator("dl.commands")).not_to_contain_text("insecure-registries")
    # The appc-only version offers no docker or skopeo line.
    appc_row = version_row(page, "1.0").locator("xpath=following-sibling::tr[1]")
    assert list(commands_of(appc_row)) == ["pyrkt fetch", "pyrkt run", "rkt fetch"]

    client = tmp_path / "client"
    trusted = run_shown_command(page.locator("#trust-command").inner_text(), client, answer="y\n")
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    fetched = run_shown_command(by_tool["pyrkt fetch"], client)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert fetched.stdout.strip().splitlines()[-1].startswith("sha512-")
    # The rkt line's URL and its signature are what rkt downloads.
    url = by_tool["rkt fetch"].split()[-1]
    assert requests.get(url, timeout=30).status_code == 200
    assert requests.get(url + ".asc", timeout=30).text.startswith("-----BEGIN PGP SIGNATURE")
    words = shlex.split(by_tool["skopeo"])
    copied = skopeo(*words[1:], cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    index = json.loads((tmp_path / "hello" / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "2.0"
    # The copy button copies exactly the shown line.
    button = commands_row.locator("dl.commands dd").first.get_by_role("button",
                                                                      name="Copy the command")
    button.click()
    expect(button).to_have_text("Copied")
    assert clipboard(page) == by_tool["pyrkt fetch"]


# -- 3. scoped tokens and robot accounts -------------------------------------------------------------
def test_scoped_tokens_from_the_account_page(admin_page: Page, registry: LiveRegistry,
                                             demo: dict[str, object], tmp_path: Path) -> None:
    page = admin_page
    page.goto(registry.url("/_ui/account"))
    page.get_by_label("Description").fill("read-only for dashboards")
    page.get_by_label("Scope").select_option("read")
    page.get_by_label("Repository").fill(NAME)
    page.get_by_label("Expires").select_option("30")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").inner_text().strip()
    expect(page.locator(".notice")).to_contain_text(f"Scope read on {NAME}")
    aci = build_aci(tmp_path, NAME, "9.0")
    refused = upload(registry, NAME, aci, token=token)
    assert refused.status_code == 403, refused.text
    other = registry.api("GET", f"/repositories/{OTHER}", token=token)
    assert other.status_code == 200  # public: readable by anyone
    assert registry.api("DELETE", f"/repositories/{OTHER}", token=token).status_code == 403
    # Over /v2/ too: skopeo with the read token pulls but cannot push.
    layout = demo["layout"]
    assert isinstance(layout, oci_images.OCIImage)
    pushed = oci_push(registry, layout, "demo/hello:9.0", f"admin:{token}")
    assert pushed.returncode != 0
    pulled = skopeo("inspect", "--tls-verify=false", "--creds", f"admin:{token}",
                    f"docker://127.0.0.1:{registry.port}/demo/hello:2.0")
    assert pulled.returncode == 0, pulled.stderr
    page.goto(registry.url("/_ui/account"))
    row = page.locator("tr.token", has_text="read-only for dashboards")
    expect(row).to_contain_text("from 127.0.0.1")
    expect(row).to_contain_text("active")
    expect(row.locator("td[data-label=Expires]")).to_contain_text(
        (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d"))
    both_sizes(page, "product-tokens")
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("revoked; it no longer works")).to_be_visible()
    assert registry.api("GET", "/whoami", token=token).status_code == 401


def test_robot_accounts_for_ci(admin_page: Page, browser: Browser, registry: LiveRegistry,
                               demo: dict[str, object], tmp_path: Path) -> None:
    page = admin_page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Robots").click()
    page.get_by_label("Name").fill("ci-hello")
    page.get_by_label("What it is for").fill("CI of demo/hello")
    page.get_by_role("button", name="Create robot").click()
    expect(page.get_by_text("Robot account ci-hello created")).to_be_visible()
    page.get_by_label("Repository", exact=True).first.fill(NAME)
    page.get_by_label("Role", exact=True).select_option("write")
    page.get_by_role("button", name="Set role").click()
    expect(page.locator("table.robot-roles")).to_contain_text(NAME)
    tokens = page.locator("section", has=page.get_by_role("heading", name="Tokens"))
    tokens.get_by_label("Description").fill("pipeline")
    tokens.get_by_label("Scope").select_option("push")
    tokens.get_by_label("Repository").fill(NAME)
    tokens.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").inner_text().strip()
    assert token.startswith("pyrkt_")
    # The robot pushes where it has a role and its token reaches, nowhere else.
    assert upload(registry, NAME, build_aci(tmp_path / "a", NAME, "4.0"),
                  token=token).status_code == 201
    assert upload(registry, OTHER, build_aci(tmp_path / "b", OTHER, "4.0"),
                  token=token).status_code == 403
    layout = demo["layout"]
    assert isinstance(layout, oci_images.OCIImage)
    pushed = oci_push(registry, layout, "demo/hello:5.0", f"ci-hello:{token}")
    assert pushed.returncode == 0, pushed.stderr
    assert oci_push(registry, layout, "demo/other:5.0", f"ci-hello:{token}").returncode != 0
    # It cannot sign in to the web UI: it has no password (its token is none either).
    stranger = new_page(browser)
    stranger.goto(registry.url("/_ui/login"))
    stranger.get_by_label("User name").fill("ci-hello")
    stranger.get_by_label("Password").fill(token)
    stranger.get_by_role("button", name="Sign in").click()
    expect(stranger.get_by_text("Wrong user name or password.")).to_be_visible()
    stranger.context.close()
    page.goto(registry.url("/_ui/robots/ci-hello"))
    expect(page.locator("tr.token", has_text="pipeline")).to_contain_text("from 127.0.0.1")
    both_sizes(page, "product-robot")
    page.get_by_role("link", name="← Robot accounts").click()
    expect(page.locator("table.robots")).to_contain_text("ci-hello")
    expect(page.locator("table.robots")).to_contain_text(f"{NAME} write")
    both_sizes(page, "product-robots")
    robots = registry.cli("robot", "list", "--json")
    assert json.loads(robots.stdout)["robots"][0]["roles"] == {NAME: "write"}


# -- 4. pull counts and the chart (scripts off) ------------------------------------------------------
def test_pull_counts_and_the_chart_without_scripts(browser: Browser, registry: LiveRegistry,
                                                   demo: dict[str, object]) -> None:
    time.sleep(2.5)  # earlier tests' pulls are written (every second here) before counting
    before = registry.api("GET", f"/repositories/{NAME}/-/pulls").json()
    for _ in range(3):
        assert requests.get(registry.url(f"/_aci/{NAME}/1.0/linux/amd64/image.aci"),
                            timeout=30).status_code == 200
    inspected = skopeo("inspect", "--tls-verify=false",
                       f"docker://127.0.0.1:{registry.port}/demo/hello:2.0")
    assert inspected.returncode == 0, inspected.stderr
    expected = before["total"] + 4

    def counted() -> dict[str, object] | None:
        now = registry.api("GET", f"/repositories/{NAME}/-/pulls").json()
        return now if now["total"] == expected else None

    now = wait_for(counted, 30, "the pull counts to be written")
    assert now["versions"]["1.0"] == before["versions"].get("1.0", 0) + 3
    assert now["versions"]["2.0"] == before["versions"].get("2.0", 0) + 1
    # Earlier days, written straight into the table (as a month of use would have), so the
    # chart has a history to draw.
    with sqlite3.connect(registry.data_dir / "registry.db") as db:
        repo_id = db.execute("SELECT id FROM repositories WHERE name = ?", (NAME,)).fetchone()[0]
        today = datetime.now(UTC).date()
        for back in range(1, 60):
            db.execute("INSERT INTO pull_counts (repository_id, version, day, count) "
                       "VALUES (?, '1.0', ?, ?)",
                       (repo_id, (today - timedelta(days=back)).isoformat(), (back * 7) % 23))
    page = new_page(browser, javascript=False)
    page.goto(registry.url("/demo/hello"))
    chart = page.locator("svg.chart")
    expect(chart).to_be_visible()
    bars = chart.locator("rect.bar")
    expect(bars).to_have_count(90)
    today_bar = bars.nth(89)
    assert today_bar.locator("title").text_content() == f"{today.isoformat()}: {now['days'][-1]['pulls']} pulls"
    assert float(bars.nth(89 - 3).get_attribute("height") or 0) > 1  # 21 pulls three days ago
    box = chart.bounding_box()
    assert box is not None and box["width"] > 600 and box["height"] > 150
    seeded = registry.api("GET", f"/repositories/{NAME}/-/pulls").json()
    assert seeded["total"] == now["total"] + sum((b * 7) % 23 for b in range(1, 60))
    expect(version_row(page, "1.0").locator("td.pulls-cell")).to_have_text(
        str(seeded["versions"]["1.0"]))
    expect(page.locator(".pull-total")).to_have_text(str(seeded["total"]))
    both_sizes(page, "product-repository")
    page.set_viewport_size(PHONE)
    phone_box = chart.bounding_box()
    assert phone_box is not None and phone_box["width"] < 390
    page.context.close()


# -- 5. Markdown descriptions, rendered safely -------------------------------------------------------
def test_markdown_description_is_edited_and_rendered_safely(admin_page: Page,
                                                            registry: LiveRegistry,
                                                            demo: dict[str, object]) -> None:
    page = admin_page
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    page.goto(registry.url("/demo/other"))
    page.get_by_text("Edit description").click()
    page.get_by_label("Description").fill(
        "## Usage\n\nRun it with **pyrkt run**; see [the docs](https://example.com/docs).\n\n"
        "<script>alert('x')</script>\n\n<img src=x onerror=\"alert('y')\">\n\n"
        "[bad](javascript:alert('z'))\n\n| flag | meaning |\n|---|---|\n| `-v` | verbose |\n")
    page.get_by_role("button", name="Save description").click()
    expect(page.get_by_text("Description saved.")).to_be_visible()
    description = page.locator(".description.markdown")
    expect(description.locator("h2")).to_have_text("Usage")
    expect(description.locator("strong")).to_have_text("pyrkt run")
    expect(description.locator("table td code")).to_have_text("-v")
    expect(description.locator("a[href='https://example.com/docs']")).to_have_attribute(
        "rel", "nofollow noopener noreferrer")
    expect(description.locator("script, img, [onerror]")).to_have_count(0)
    expect(description.locator("a[href^='javascript']")).to_have_count(0)
    expect(description).to_contain_text("<script>alert('x')</script>")
    page.reload()
    assert dialogs == []


# -- 6. the audit log at 1280 px -------------------------------------------------------------------
def test_audit_log_readable_filterable_exportable(admin_page: Page, registry: LiveRegistry,
                                                  demo: dict[str, object], tmp_path: Path) -> None:
    page = admin_page
    page.goto(registry.url("/_ui/audit"))
    table = page.locator("table.audit")
    expect(table).to_be_visible()
    both_sizes(page, "product-audit")
    # Readable at 1280 px: no hash wraps (each is one line), no row is a tower (the issue saw
    # ~350 px rows of hashes broken every 14 characters).
    heights = [row.bounding_box()["height"] for row in table.locator("tbody tr").all()]
    assert heights and max(heights) < 160, heights
    hash_heights = [code.bounding_box()["height"] for code in table.locator("code.hash").all()]
    assert hash_heights and max(hash_heights) < 24, hash_heights
    upload_row = table.locator("tbody tr", has=page.locator("code", has_text="image.upload")).first
    digest = upload_row.locator("code.hash").first
    full = digest.get_attribute("title") or ""
    assert re.fullmatch(r"sha(256:[0-9a-f]{64}|512-[0-9a-f]{128})", full), full
    assert digest.inner_text().endswith("…") and len(digest.inner_text()) < 24
    system = table.locator("tbody tr", has=page.locator(".badge.system"), has_text="first fetch")
    expect(system).to_contain_text(f"triggered by first fetch of {NAME}:3.0 by an anonymous "
                                   "client")
    # Copy gives the whole value.
    upload_row.locator("button.copy").first.click()
    assert clipboard(page) == full

    page.get_by_label("Who").select_option("ci-hello")
    page.get_by_role("button", name="Filter").click()
    rows = table.locator("tbody tr")
    expect(rows.first).to_be_visible()
    for row in rows.all():
        expect(row.locator("td.who")).to_contain_text("ci-hello")
    page.get_by_label("Who").select_option("")
    page.get_by_label("Repository").fill(OTHER)
    page.get_by_label("Action").select_option("repository.update")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(OTHER)
    with page.expect_download() as csv_download:
        page.get_by_role("link", name="CSV").click()
    exported = list(csv.DictReader(io.StringIO(Path(csv_download.value.path()).read_text())))
    assert [(r["action"], r["target"]) for r in exported] == [("repository.update", OTHER)]
    with page.expect_download() as json_download:
        page.get_by_role("link", name="JSON").click()
    events = json.loads(Path(json_download.value.path()).read_text())["events"]
    assert [(e["action"], e["target"], e["actor_kind"]) for e in events] == [
        ("repository.update", OTHER, "user")]
