"""The app in a real headless Chromium (Debian's package, driven by Playwright; no browser download)."""
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS


@pytest.mark.slow
def test_search_in_the_browser(app_url, page):
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(app_url, wait_until="load")  # never "networkidle": a gr.State keeps a heartbeat stream open
    page.get_by_label("Description").fill("a dog on a blue background")
    page.get_by_role("button", name="Search", exact=True).click()
    gallery_images = page.locator(".gallery img, [data-testid='gallery'] img, button.thumbnail-item img")
    gallery_images.first.wait_for(timeout=30_000)
    assert gallery_images.count() >= 12
    page.wait_for_timeout(1_000)  # the worked answer, had it come late, would have landed by now
    assert page.get_by_label("Description").input_value() == "a dog on a blue background"  # never replaced by it
    page.screenshot(path=str(ARTIFACTS / "search.png"), full_page=True)
    assert "OpenMoji" in page.content()


@pytest.mark.slow
def test_bad_input_shows_a_message_in_the_browser(app_url, page):
    page.goto(app_url, wait_until="load")  # never "networkidle": a gr.State keeps a heartbeat stream open
    page.locator("#search-results img").first.wait_for(timeout=60_000)  # the arrival fills the box: wait for it
    page.get_by_label("Description").fill("   ")
    page.get_by_role("button", name="Search", exact=True).click()
    page.get_by_text("Type a description first.").first.wait_for(timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / "search-error.png"))


@pytest.mark.slow
def test_categorise_caption_and_compare_in_the_browser(app_url, page):
    ARTIFACTS.mkdir(exist_ok=True)
    root = Path(__file__).resolve().parent.parent
    page.goto(app_url, wait_until="load")  # never "networkidle": a gr.State keeps a heartbeat stream open

    page.get_by_role("tab", name="Categorise").click()
    watch = next((root / "assets/examples/products").glob("*alarm-clock.png"))
    page.locator("#categorise-tab input[type=file]").first.set_input_files(str(watch))
    page.locator("#categorise-label").get_by_text("watches").first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "categorise.png"), full_page=True)

    page.get_by_role("tab", name="Caption").click()
    scene = sorted((root / "assets/examples/scenes").glob("*.png"))[0]
    page.locator("#caption-tab input[type=file]").first.set_input_files(str(scene))
    caption = page.locator("#caption-text textarea")
    page.wait_for_function("el => el.value.length > 0", arg=caption.element_handle(), timeout=30_000)
    assert len(caption.input_value().split()) >= 3
    page.locator("#caption-tab .gallery img, #caption-tab button.thumbnail-item img").first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "caption.png"), full_page=True)

    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-tab").get_by_text("cnn-baseline").first.wait_for(timeout=15_000)
    # The plots are drawn when the tab is first opened (not at start-up).
    page.locator("#compare-confusion img").first.wait_for(state="attached", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)


@pytest.mark.slow
def test_every_tab_shows_its_worked_answer_on_arrival(app_url, page):
    """A fresh page, no button or example clicked (only the tab headers): each tab already shows its first
    example worked, from the answers computed once for every visitor."""
    import re

    from models.zero_shot import catalogue_classes

    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(app_url, wait_until="load")  # never "networkidle": a gr.State keeps a heartbeat stream open

    results = page.locator("#search-results img")
    results.first.wait_for(timeout=30_000)
    assert results.count() >= 12
    from tabs.search import EXAMPLE_QUERIES

    assert page.get_by_label("Description").input_value() == EXAMPLE_QUERIES[0]  # "an olive on a ... background"
    shown = page.locator("#search-results").inner_text()
    assert re.search(r"\b0\.\d{3} · ", shown)  # cosine score · caption
    first_caption = re.search(r"\b0\.\d{3} · ([^\n]*)", shown).group(1)
    assert "olive" in first_caption  # the worked answer is right: its first hit shows what the query names

    page.get_by_role("tab", name="Categorise").click()
    label = page.locator("#categorise-label")
    label.get_by_text(re.compile("|".join(map(re.escape, catalogue_classes())))).first.wait_for(timeout=30_000)
    top = [line for line in label.inner_text().splitlines() if line.strip()][1]  # after the component's own label
    assert top == "home furnishing"  # the first example product is a toilet
    page.locator("#categorise-heat img").first.wait_for(timeout=10_000)
    assert page.locator("#categorise-tab").get_by_text(re.compile("Confident|Doubtful")).count() >= 1
    page.screenshot(path=str(ARTIFACTS / "arrival-categorise.png"), full_page=True)
    page.get_by_label("bare category names").check()  # changing an input and asking again replaces the answer
    page.get_by_role("button", name="Categorise", exact=True).click()
    page.locator("#categorise-tab").get_by_text("a product photo of watches").first.wait_for(timeout=30_000)

    page.get_by_role("tab", name="Caption").click()
    caption = page.locator("#caption-text textarea")
    page.wait_for_function("el => el.value.length > 0", arg=caption.element_handle(), timeout=30_000)
    assert len(caption.input_value().split()) >= 3
    assert "olive" in caption.input_value()  # the first example scene shows an olive, and the caption says so
    strip = page.locator("#caption-strip img")
    strip.first.wait_for(timeout=10_000)
    from models.captioner import tokenize

    assert strip.count() == len(tokenize(caption.input_value()))  # one attention map per token (a comma has one)
    page.screenshot(path=str(ARTIFACTS / "arrival-caption.png"), full_page=True)

    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-confusion img").first.wait_for(timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "arrival-compare.png"), full_page=True)


@pytest.mark.slow
def test_a_line_shows_while_the_warm_start_downloads(page):
    """While a warm-up step with a notice runs (a Hub download), the page says so; the line goes when it ends."""
    import threading

    from app import build_demo, launch
    from core.catalog import load_catalog
    from core.warmup import WarmStart

    warm, release = WarmStart(), threading.Event()
    warm.add("download", lambda: release.wait(60), notice="⏳ Downloading **big-model** from the Hugging Face Hub")
    demo = build_demo(load_catalog(), warm=warm)
    launch(demo, warm, server_name="127.0.0.1")
    try:
        page.goto(demo.local_url)
        line = page.get_by_text("big-model")
        line.wait_for(timeout=30_000)
        assert "Hugging Face Hub" in page.locator("body").inner_text()
        release.set()
        line.wait_for(state="detached", timeout=30_000)
    finally:
        release.set()
        warm.wait(180)  # the rest of the warm start (worked answers, plots) must not run into the next test
        demo.close()


@pytest.mark.slow
def test_a_query_typed_before_the_worked_answer_lands_is_kept(page):
    """The Search tab's worked answer is held while the visitor types a query; once it is computed it does not
    land: the typed query stays (and a search runs on it, not on the example's)."""
    import dataclasses
    import threading

    from app import build_demo
    from core.catalog import load_catalog
    from core.warmup import WarmStart

    warm, entered, release, computed = WarmStart(), threading.Event(), threading.Event(), threading.Event()
    demo = build_demo(load_catalog(), warm=warm)  # no warm-up thread: the page load computes the answers
    step = warm._steps["search worked answer"]

    def held():
        entered.set()
        release.wait(60)
        try:
            return step.build()
        finally:
            computed.set()

    warm._steps[step.name] = dataclasses.replace(step, build=held)
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        # not "load": that waits for every lazily loaded chunk, served by this process while it computes the other
        # tabs' worked answers (there is no warm-up thread here); the box below is waited for anyway
        page.goto(demo.local_url, wait_until="domcontentloaded")
        assert entered.wait(60)  # the worked answer is being computed, and held
        box = page.get_by_label("Description")
        box.fill("a cat")
        release.set()
        assert computed.wait(120)
        page.wait_for_timeout(5_000)  # time for the computed answer to reach the page, were it to land
        assert box.input_value() == "a cat"
    finally:
        release.set()
        demo.close()
