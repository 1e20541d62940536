"""The demo in a real browser: headless Chromium draws a digit with the mouse and reads the label.

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
               "--no-first-run", "--window-size=1280,1000"):
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


def _wait_for(driver, condition, what: str) -> str:
  deadline = time.monotonic() + TIMEOUT_S
  while time.monotonic() < deadline:
    text = _label(driver)
    if condition(text):
      return text
    time.sleep(0.2)
  pytest.fail(f"{what}: label still {_label(driver)!r} after {TIMEOUT_S} s")


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


def test_draw_digits_in_chromium(browser, tmp_path):
  shots = Path(os.environ.get("JAXDIGITS_SCREENSHOT_DIR", tmp_path))
  shots.mkdir(parents=True, exist_ok=True)
  with running_demo(log=tmp_path / "server.log") as url:
    browser.get(url)
    # A 7: the top bar, then the long diagonal down to the bottom left. No click on the brush
    # tool first: the app selects it, as a user expects of a sketchpad.
    _stroke(browser, _canvas(browser), [(0.3, 0.25), (0.7, 0.25), (0.68, 0.3), (0.45, 0.8)])
    seven = _wait_for(browser, lambda t: t.isdigit(), "after drawing a 7")
    browser.save_screenshot(str(shots / "demo_seven.png"))
    print(f"screenshots in {shots}")
    assert seven == "7"
    browser.find_element("css selector", "#clear").click()
    _wait_for(browser, lambda t: t.startswith("draw a digit"), "after Clear")
    # The cleared canvas takes a new drawing: a 0, an ellipse through 10 points.
    ring = [(0.5 + 0.2 * math.sin(a), 0.5 - 0.3 * math.cos(a))
            for a in np.linspace(0, 2 * math.pi, 10)]
    _stroke(browser, _canvas(browser), ring)
    zero = _wait_for(browser, lambda t: t.isdigit(), "after drawing a 0")
    browser.save_screenshot(str(shots / "demo_zero.png"))
    assert zero == "0"
