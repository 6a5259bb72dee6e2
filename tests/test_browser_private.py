"""Your pictures in a real headless Chromium, on a page of its own (the `page` fixture is one per module:
tests/test_browser.py's is shared by its tests, and an upload list there was not found by locator after the arrival
test, though shown)."""
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS


@pytest.mark.slow
def test_your_pictures_in_the_browser(app_url, page, tmp_path):
    """Upload pictures, wait for the build, search them, click a result (its explanation shows), download the
    results as JSON; a second visitor's page does not list the first one's pictures."""
    import json

    from tests.test_private_collections import picture

    ARTIFACTS.mkdir(exist_ok=True)
    files = []
    for i in range(5):
        files.append(tmp_path / f"my-photo-{i}.png")
        picture(300 + i, (400, 300)).save(files[-1])
    page.goto(app_url, wait_until="load")  # never "networkidle": a gr.State keeps a heartbeat stream open
    page.locator("#search-results img").first.wait_for(timeout=120_000)  # the worked answer (a busy machine: slow)
    with page.expect_download(timeout=30_000) as download:  # its results, as JSON, before anything is clicked
        page.locator("#search-download").click()
    arrival = json.loads(Path(download.value.path()).read_text())
    from tabs.search import EXAMPLE_QUERIES

    assert arrival["query"] == EXAMPLE_QUERIES[0] and len(arrival["results"]) == 12
    assert arrival["results"][0]["rank"] == 1 and arrival["results"][0]["file_name"] is None
    page.get_by_role("tab", name="Search").click()  # the page is shared with the tests before (module scope)
    page.get_by_text("Your pictures: search your own collection").click()
    page.locator("#your-pictures-files input[type=file]").set_input_files([str(f) for f in files])
    page.locator("#your-pictures-files").get_by_text("my-photo-4").first.wait_for(timeout=30_000)  # listed
    page.locator("#your-pictures-build").click()
    page.locator("#your-pictures-status").get_by_text("Indexed").wait_for(timeout=60_000)
    assert "Indexed 5 of your pictures" in page.locator("#your-pictures-status").inner_text()
    page.get_by_label("Description").fill("a picture with a circle")
    page.get_by_role("button", name="Search", exact=True).click()
    page.locator("#search-results").get_by_text("my-photo-").first.wait_for(timeout=30_000)
    assert page.locator("#search-results img").count() == 5  # only the five pictures: the collection is theirs
    page.screenshot(path=str(ARTIFACTS / "your-pictures.png"), full_page=True)
    page.locator("#search-results img").first.click()
    page.locator("#explain-heatmap img").first.wait_for(timeout=30_000)
    with page.expect_download(timeout=30_000) as download:
        page.locator("#search-download").click()
    rows = json.loads(Path(download.value.path()).read_text())["results"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert {r["file_name"] for r in rows} == {f.name for f in files} and all("score" in r and r["model"] for r in rows)

    other = page.context.browser.new_page()  # another visitor
    other.goto(app_url, wait_until="load")
    other.locator("#search-results img").first.wait_for(timeout=120_000)
    other.get_by_label("Collection").click()
    other.get_by_role("option").first.wait_for(timeout=10_000)
    options = other.get_by_role("option").all_inner_texts()
    assert options and not any("your pictures" in o for o in options)
    other.close()
