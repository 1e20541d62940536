"""The demo in a real browser: headless Chromium draws digits and numbers with the mouse and reads
the label and the number from the page.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package (dev extra).
Without them the test skips, unless JAXDIGITS_REQUIRE_BROWSER is set (CI sets it): then it
fails, so a broken install cannot pass as a skip.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from demo_server import running_demo

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
TIMEOUT_S = 60


def _require_browser():
  try:
    import selenium  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    missing = "the selenium package (pip install -e '.[dev]')"
  else:
    missing = None if CHROMIUM and DRIVER else "chromium and chromium-driver (apt-get install -y " \
                                               "chromium chromium-driver)"
  if missing:
    if os.environ.get("JAXDIGITS_REQUIRE_BROWSER"):
      pytest.fail(f"JAXDIGITS_REQUIRE_BROWSER is set but {missing} is not installed")
    pytest.skip(f"no browser for the demo test: install {missing}, or set "
                f"JAXDIGITS_REQUIRE_BROWSER=1 to make this a failure")


@pytest.fixture(scope="module")
def browser():
  _require_browser()
  # The driver and browser are given by path, so Selenium Manager has nothing to fetch; this
  # also keeps it from sending usage statistics should it run.
  os.environ.setdefault("SE_AVOID_STATS", "true")
  from selenium import webdriver  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", "--window-size=1280,1500"):
    options.add_argument(flag)
  driver = webdriver.Chrome(service=Service(DRIVER), options=options)
  driver.set_page_load_timeout(TIMEOUT_S)
  driver.set_script_timeout(TIMEOUT_S)
  yield driver
  driver.quit()


def _label(driver) -> str:
  # gr.Label renders the top class as an h2 (data-testid="label-output-value").
  heads = driver.find_elements("css selector", "#prediction [data-testid='label-output-value']")
  return heads[0].text.strip() if heads else ""


def _number(driver) -> str:
  # gr.Markdown: "Number: 2026", or "Number: none (<reason>)".
  shown = driver.find_elements("css selector", "#number")
  return shown[0].text.strip() if shown else ""


def _wait_for(driver, condition, what: str, read=_label, timeout_s: float = TIMEOUT_S) -> str:
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    text = read(driver)
    if condition(text):
      return text
    time.sleep(0.1)
  pytest.fail(f"{what}: still {read(driver)!r} after {timeout_s} s")


# Digits as strokes in a unit box (0..1 from its top left), to draw side by side as numbers.
DIGIT_STROKES = {
    "1": [[(0.5, 0.1), (0.5, 0.9)]],
    "7": [[(0.1, 0.1), (0.9, 0.1), (0.4, 0.9)]],
    "0": [[(0.5 + 0.38 * math.sin(a), 0.5 - 0.42 * math.cos(a))
           for a in np.linspace(0, 2 * math.pi, 10)]],
    "4": [[(0.25, 0.05), (0.1, 0.6), (0.9, 0.6)], [(0.65, 0.3), (0.65, 0.95)]],
}


def _draw_number(driver, digits: str, top: float, height: float) -> None:
  """Draws digits left to right, each in a box height tall (a fraction of the canvas's) and
  about half as wide, with equal gaps."""
  canvas = _canvas(driver)
  width = height * 0.45 * canvas.size["height"] / canvas.size["width"]
  gap = (1 - width * len(digits)) / (len(digits) + 1)
  for i, digit in enumerate(digits):
    left = gap + i * (width + gap)
    for stroke in DIGIT_STROKES[digit]:
      _stroke(driver, canvas, [(left + x * width, top + y * height) for x, y in stroke])


def _loaded_images(driver) -> int:
  return driver.execute_script(
      "return [...document.querySelectorAll('#number-boxes img, #heat-map img')]"
      ".filter((im) => im.complete && im.naturalWidth > 0).length")


def _clear(driver) -> None:
  driver.find_element("css selector", "#clear").click()
  _wait_for(driver, lambda t: t.startswith("draw a digit"), "after Clear")
  _wait_for(driver, lambda t: t == "", "the number after Clear", read=_number)


def _canvas(driver):
  """The editor's drawing canvas, once the page has rendered it."""
  deadline = time.monotonic() + TIMEOUT_S
  while time.monotonic() < deadline:
    canvases = [c for c in driver.find_elements("css selector", "#sketchpad canvas")
                if c.size["width"] > 100]
    if canvases:
      time.sleep(0.5)  # the brush is picked by a script that runs once the editor exists
      return canvases[-1]
    time.sleep(0.2)
  pytest.fail(f"no drawing canvas in #sketchpad after {TIMEOUT_S} s")


def _stroke(driver, canvas, points: list[tuple[float, float]]) -> None:
  """One mouse stroke through points given as fractions of the canvas (0..1, from top-left)."""
  from selenium.webdriver.common.action_chains import ActionChains  # pylint: disable=g-import-not-at-top
  w, h = canvas.size["width"], canvas.size["height"]
  # Selenium 4 offsets are from the element's centre.
  at = lambda p: (int((p[0] - 0.5) * w), int((p[1] - 0.5) * h))
  chain = ActionChains(driver, duration=20).move_to_element_with_offset(canvas, *at(points[0]))
  chain.click_and_hold()
  for a, b in zip(points, points[1:]):
    # One intermediate move per segment: each move costs headless Chromium's software
    # renderer ~0.5 s, and the editor joins the points with a stroke anyway.
    for t in (0.5, 1.0):
      chain.move_to_element_with_offset(
          canvas, *at((a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)))
  chain.release().perform()


@pytest.mark.slow
def test_draw_digits_and_numbers_in_chromium(browser, tmp_path):
  shots = Path(os.environ.get("JAXDIGITS_SCREENSHOT_DIR", tmp_path))
  shots.mkdir(parents=True, exist_ok=True)
  with running_demo(log=tmp_path / "server.log") as url:
    browser.get(url)
    # A 7: the top bar, then the long diagonal down to the bottom left, in one stroke.
    _stroke(browser, _canvas(browser), [(0.3, 0.25), (0.7, 0.25), (0.68, 0.3), (0.45, 0.8)])
    seven = _wait_for(browser, lambda t: t.isdigit(), "after drawing a 7")
    browser.save_screenshot(str(shots / "demo_seven.png"))
    print(f"screenshots in {shots}")
    assert seven == "7"
    _clear(browser)
    # The cleared canvas takes a new drawing: a 0, an ellipse through 10 points.
    ring = [(0.5 + 0.2 * math.sin(a), 0.5 - 0.3 * math.cos(a))
            for a in np.linspace(0, 2 * math.pi, 10)]
    _stroke(browser, _canvas(browser), ring)
    zero = _wait_for(browser, lambda t: t.isdigit(), "after drawing a 0")
    assert zero == "0"
    _clear(browser)
    _draw_number(browser, "71", top=0.2, height=0.6)
    # Each stroke updates the number; the last one's reading is the one that must stay.
    _wait_for(browser, lambda t: t == "Number: 71", "after drawing 71", read=_number, timeout_s=20)
    _clear(browser)
    _draw_number(browser, "1074", top=0.2, height=0.6)
    _wait_for(browser, lambda t: t == "Number: 1074", "after drawing 1074", read=_number,
              timeout_s=20)
    # The boxes and the heat map: images the page loads after the number is shown.
    time.sleep(0.5)
    _wait_for(browser, lambda n: n == 2, "the boxes and the heat map", read=_loaded_images)
    browser.save_screenshot(str(shots / "demo_number.png"))
