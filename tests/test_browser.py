"""The app in a real headless Chromium (Debian's package, driven by Playwright; no browser download)."""
import shutil
from pathlib import Path

import pytest


ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium package (.ci/run does)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield page
        browser.close()


@pytest.mark.slow
def test_search_in_the_browser(app_url, page):
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(app_url, wait_until="networkidle")
    page.get_by_label("Description").fill("a dog on a blue background")
    page.get_by_role("button", name="Search", exact=True).click()
    gallery_images = page.locator(".gallery img, [data-testid='gallery'] img, button.thumbnail-item img")
    gallery_images.first.wait_for(timeout=30_000)
    assert gallery_images.count() >= 12
    page.screenshot(path=str(ARTIFACTS / "search.png"), full_page=True)
    assert "OpenMoji" in page.content()


@pytest.mark.slow
def test_bad_input_shows_a_message_in_the_browser(app_url, page):
    page.goto(app_url, wait_until="networkidle")
    page.get_by_label("Description").fill("   ")
    page.get_by_role("button", name="Search", exact=True).click()
    page.get_by_text("Type a description first.").first.wait_for(timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / "search-error.png"))
