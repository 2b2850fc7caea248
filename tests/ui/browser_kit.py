"""Playwright on Debian's chromium (never a downloaded browser) and the UI's page actions."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = REPO_ROOT / "test-output" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]


def launch(playwright) -> Browser:  # type: ignore[no-untyped-def]
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def new_page(browser: Browser, *, javascript: bool = True, width: int = 1280) -> Page:
    context = browser.new_context(viewport={"width": width, "height": 900},
                                  java_script_enabled=javascript)
    page = context.new_page()
    # Destructive forms ask for confirmation; the tests say yes.
    page.on("dialog", lambda dialog: dialog.accept())
    page.set_default_timeout(15_000)
    return page


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    return target


def sign_in(page: Page, base_url: str, username: str, password: str) -> None:
    page.goto(base_url + "/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Sign in").click()
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(f"Signed in as {username}.")).to_be_visible()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("Signed out.")).to_be_visible()


def run_shown_command(command: str, client_dir: Path, *, answer: str = "") -> subprocess.CompletedProcess[str]:
    """Run a `pyrkt ...` command exactly as the page shows it, with a private store and config."""
    words = shlex.split(command)
    assert words[0] == "pyrkt", command
    env = dict(os.environ, PYRKT_DIR=str(client_dir / "store"),
               PYRKT_SYSTEM_CONFIG=str(client_dir / "system"),
               PYRKT_LOCAL_CONFIG=str(client_dir / "local"),
               PYRKT_USER_CONFIG=str(client_dir / "user"))
    return subprocess.run([sys.executable, "-m", "registry.cli.main", *words[1:]], env=env,
                          input=answer, capture_output=True, text=True, timeout=120)
