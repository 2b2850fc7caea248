"""The Operations page in Debian's chromium: set a retention policy, add a webhook and a mirror
through the forms, read the plan and the delivery log; screenshots at 1280 px and on a phone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_kit import launch, new_page, screenshot, sign_in
from live_registry import LiveRegistry
from playwright.sync_api import Browser, expect, sync_playwright
from ui_images import build_aci

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

NAME = "127.0.0.1/team/ops"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRegistry]:
    with LiveRegistry(tmp_path_factory.mktemp("ops-registry"), workers=1,
                      env={"PYRKT_REGISTRY_WEBHOOK_RETRY_BASE": "0.2"}) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


def test_operations_page_forms_and_screenshots(browser: Browser, registry: LiveRegistry,
                                               tmp_path: Path) -> None:
    for version in ("1.0", "2.0", "3.0"):
        aci = build_aci(tmp_path / version, NAME, version)
        answer = registry.api("POST", f"/repositories/{NAME}/-/images", data=aci.read_bytes())
        assert answer.status_code == 201, answer.text
    page = new_page(browser)
    sign_in(page, registry.base_url, registry.admin, registry.admin_password)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Operations").click()
    expect(page.get_by_role("heading", name="Operations", exact=True)).to_be_visible()
    page.get_by_label("Repository (empty: registry-wide)").fill(NAME)
    page.get_by_label("Keep the newest N versions").fill("1")
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_text("retention policy saved")).to_be_visible()
    expect(page.get_by_text(f"{NAME}:1.0")).to_be_visible()
    expect(page.get_by_text(f"{NAME}:2.0")).to_be_visible()
    page.get_by_label("Receiver URL").fill("http://127.0.0.1:9/ci-hook")
    page.get_by_role("button", name="Add webhook").click()
    expect(page.get_by_text("Secret of the new webhook (shown once)")).to_be_visible()
    page.get_by_label("Name prefix").fill("example.org/apps")
    page.get_by_role("button", name="Add mirror").click()
    expect(page.get_by_text("Mirroring example.org/apps.")).to_be_visible()
    # A push now queues a delivery; the worker's dispatcher tries the dead receiver.
    aci = build_aci(tmp_path / "4.0", NAME, "4.0")
    assert registry.api("POST", f"/repositories/{NAME}/-/images",
                        data=aci.read_bytes()).status_code == 201
    page.goto(registry.url("/_ui/operations"))
    page.get_by_role("link", name="http://127.0.0.1:9/ci-hook").click()
    expect(page.get_by_role("heading", name="Delivery log")).to_be_visible()
    for _ in range(40):
        if page.get_by_text("no answer").count():
            break
        page.wait_for_timeout(250)
        page.reload()
    expect(page.get_by_text("no answer").first).to_be_visible()
    screenshot(page, "19-webhook-delivery-log")
    page.goto(registry.url("/_ui/operations"))
    screenshot(page, "19-operations")
    phone = new_page(browser, width=390)
    sign_in(phone, registry.base_url, registry.admin, registry.admin_password)
    phone.goto(registry.url("/_ui/operations"))
    expect(phone.get_by_role("heading", name="Pull-through mirrors")).to_be_visible()
    screenshot(phone, "19-operations-on-a-phone")
    phone.context.close()
    page.context.close()
