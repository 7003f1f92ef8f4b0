"""The page in a real headless Chromium: draw a digit with the mouse, upload a photo.

Needs Debian's chromium (``.ci/run`` installs it). Where it is missing the tests are skipped
with a reason, except under CI, where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import EXAMPLES, ROOT
from test_web import Server

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("INKDIGITS_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("INKDIGITS_ARTIFACTS", ROOT / "test-artifacts"))
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not shutil.which(CHROMIUM):
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: .ci/run should have installed Debian's chromium", pytrace=False)
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def server():
    running = Server()
    yield running
    running.stop()


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda message: message.type == "error" and problems.append(message.text))
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(server.url)
        yield page
        assert not problems, f"console errors: {problems}"
        browser.close()


def draw(page, strokes: list[list[tuple[float, float]]]) -> None:
    """Draw with real mouse events; points are fractions of the canvas."""
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=8)
        page.mouse.up()


def test_drawing_a_seven_reads_seven(page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    draw(page, [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]])
    page.wait_for_function("document.getElementById('digit').textContent === '7'", timeout=10000)
    assert "sure" in page.text_content("#confidence")
    assert page.locator("#bars li.top").count() == 1
    page.screenshot(path=str(ARTIFACTS / "draw-seven.png"), full_page=True)
    # undo with the keyboard brings back the empty state; Escape clears
    page.keyboard.press("Control+z")
    page.wait_for_function("document.getElementById('digit').textContent === '?'")
    draw(page, [[(0.5, 0.15), (0.5, 0.85)]])
    page.wait_for_function("document.getElementById('digit').textContent === '1'", timeout=10000)
    page.keyboard.press("Escape")
    page.wait_for_function("document.getElementById('digit').textContent === '?'")


def test_uploading_a_photo_shows_the_reading_boxed(page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.set_input_files("#file", str(EXAMPLES / "2-ballpoint-photo.jpg"))
    page.wait_for_function("document.getElementById('photo-status').textContent.startsWith('Read 2')", timeout=10000)
    box = page.locator(".box")  # one digit: its box, and no box for a one-digit line
    assert box.count() == 1 and box.is_visible() and box.text_content() == "2"
    page.screenshot(path=str(ARTIFACTS / "read-photo.png"), full_page=True)


def test_a_photo_of_a_number_is_read_with_a_box_per_digit(page, mnist, tmp_path):
    from PIL import Image
    from test_read import written_number

    picks = [0, 1, 2]  # MNIST test digits 7, 2, 1
    path = tmp_path / "number.png"
    Image.fromarray(written_number(mnist, picks, gap=40)).save(path)
    expected = "".join(str(mnist.test_labels[i]) for i in picks)
    page.set_input_files("#file", str(path))
    page.wait_for_function("document.getElementById('photo-status').textContent.startsWith('Read ')", timeout=10000)
    assert page.text_content("#photo-status") == f"Read {expected}."
    assert page.locator(".box:not(.line)").count() == 3
    assert page.locator(".box.line").text_content() == expected
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "read-number.png"), full_page=True)


def test_controls_are_reachable_by_keyboard(page):
    reached = set()
    for _ in range(8):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    assert {"pad", "undo", "clear"} <= reached
    assert "file" in reached or "drop" in reached


def test_fits_a_phone_screen(page):
    page.set_viewport_size({"width": 375, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    box = page.locator("#pad").bounding_box()
    assert box["width"] <= 375 and box["width"] >= 250
