"""Latency of the demo: /predict through gradio_client, alone and under load, and in a browser.

  python benchmarks/demo_latency.py [--url http://127.0.0.1:7860/] [--calls 100]
                                    [--clients 50] [--seconds 30] [--strokes 25] [--smoke]

Without --url it starts ``python -m jaxdigits.demo`` (the shipped model) on 127.0.0.1 and
kills it afterwards. After a warm-up it times --calls sequential predictions of a drawn 7
(p50/p95), the same requests as raw HTTP (upload, queue join, SSE result: the server's share),
then runs --clients concurrent gradio_client clients for --seconds and counts requests and
errors (an exception or a wrong digit). Then headless Chromium (Selenium, Debian's chromium
and chromedriver) draws --strokes mouse strokes on the Sketchpad, digit after digit, and times
each from its pointer-up to the prediction panel's text changing, both read from the page's
performance.now() (a MutationObserver in the page). Last line: p50_ms=… p95_ms=… requests=…
errors=… (sequential gradio_client latency; requests and errors of the concurrent run)
browser_p50_ms=… browser_p95_ms=… (nan without a browser), and for a server it started:
rss_before_mb= rss_after_mb= (the server's resident memory once serving and after the run)
upload_bytes_after= (its upload folder after SIGTERM; 0 expected). ``--smoke``: 5 calls,
2 warm-up calls, 2 clients for 2 s, 1 + 3 strokes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
from gradio_client import Client, handle_file
from PIL import Image, ImageDraw


SERVER: dict = {}  # the started server's process and temp base, for memory and cleanup figures


def rss_mb(pid: int) -> float:
  for line in Path(f"/proc/{pid}/status").read_text().splitlines():
    if line.startswith("VmRSS:"):
      return int(line.split()[1]) / 1024
  return float("nan")


def folder_bytes(base: Path) -> int:
  return sum(p.stat().st_size for p in base.rglob("*") if p.is_file())


@contextlib.contextmanager
def demo_server() -> Iterator[str]:
  base = Path(tempfile.mkdtemp(prefix="demo-latency-"))  # TMPDIR: the demo's upload folder
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  proc = subprocess.Popen([sys.executable, "-m", "jaxdigits.demo", "--port", str(port)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True, env={**os.environ, "TMPDIR": str(base)})
  SERVER.update(proc=proc, base=base)
  url = f"http://127.0.0.1:{port}/"
  try:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
      with contextlib.suppress(httpx.HTTPError):
        if httpx.get(url, timeout=2).status_code == 200:
          break
      if proc.poll() is not None:
        raise SystemExit(f"demo server exited with {proc.returncode}")
      time.sleep(0.5)
    else:
      raise SystemExit("demo server did not start within 120 s")
    SERVER["rss_before_mb"] = rss_mb(proc.pid)
    yield url
    SERVER["rss_after_mb"] = rss_mb(proc.pid)
    SERVER["uploads_bytes_live"] = folder_bytes(base)
    proc.send_signal(signal.SIGTERM)  # the demo deletes its upload folder on SIGTERM
    with contextlib.suppress(subprocess.TimeoutExpired):
      SERVER["exit_code"] = proc.wait(timeout=30)
    SERVER["uploads_bytes_after"] = folder_bytes(base)
  finally:
    # SIGKILL: a JAX process can sit in a thread that ignores SIGTERM.
    with contextlib.suppress(ProcessLookupError):
      os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def drawn_seven(path: Path) -> Path:
  """A 7 as drawn on the sketchpad: thick black strokes on a transparent 400x400 canvas."""
  im = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
  draw = ImageDraw.Draw(im)
  draw.line([(120, 100), (280, 100), (180, 320)], fill=(0, 0, 0, 255), width=28, joint="curve")
  im.save(path)
  return path


def percentiles(seconds: list[float]) -> tuple[float, float]:
  p50, p95 = np.percentile(np.asarray(seconds) * 1000, [50, 95])
  return float(p50), float(p95)


def raw_http(url: str, image: Path, fn_index: int) -> None:
  """One prediction as three plain HTTP requests: what the server itself costs."""
  api, session = url + "gradio_api", uuid.uuid4().hex
  with httpx.Client(timeout=30) as http:
    with image.open("rb") as f:
      path = http.post(api + "/upload", files={"files": f}).json()[0]
    http.post(api + "/queue/join", json={
        "data": [{"path": path, "orig_name": image.name, "meta": {"_type": "gradio.FileData"}}],
        "fn_index": fn_index, "session_hash": session}).raise_for_status()
    with http.stream("GET", api + "/queue/data", params={"session_hash": session}) as stream:
      for line in stream.iter_lines():
        if "process_completed" in line:
          assert '"success":true' in line.replace(" ", ""), line
          return


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
# Digits as strokes (canvas fractions, from the top left); each stroke changes the label, so
# the page has something to show for it. The canvas is cleared between digits, untimed.
DIGITS = (
    [[(0.3, 0.25), (0.7, 0.25)], [(0.68, 0.28), (0.45, 0.8)]],  # 7: bar, then diagonal
    [[(0.5, 0.2), (0.5, 0.8)]],  # 1
    [[(0.6, 0.2), (0.3, 0.6), (0.75, 0.6)], [(0.62, 0.35), (0.62, 0.85)]],  # 4
    [[(0.3, 0.3), (0.5, 0.2), (0.7, 0.3), (0.3, 0.8), (0.75, 0.8)]],  # 2
)
# Page side of the measurement: performance.now() at each pointer-up and at each change of
# the prediction panel's text (its progress timer left out), both in the page's clock.
WATCH_JS = """
const panel = document.querySelector('#prediction');
const text = () => {
  const tracker = panel.querySelector('[data-testid="status-tracker"]');
  return panel.textContent.replace(tracker ? tracker.textContent : '', '');
};
window.__lat = {ups: [], changes: [], last: performance.now()};
document.addEventListener('pointerup', () => window.__lat.ups.push(performance.now()), true);
let shown = text();
new MutationObserver(() => {
  window.__lat.last = performance.now();
  const now = text();
  if (now !== shown) { shown = now; window.__lat.changes.push(performance.now()); }
}).observe(document.body, {subtree: true, childList: true, characterData: true});
"""


def browser_missing() -> str | None:
  try:
    import selenium  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return "no selenium package (pip install -e '.[dev]')"
  return None if CHROMIUM and DRIVER else ("no chromium/chromedriver (apt-get install chromium "
                                           "chromium-driver)")


@contextlib.contextmanager
def chromium() -> Iterator:
  os.environ.setdefault("SE_AVOID_STATS", "true")  # Selenium Manager: nothing to fetch or send
  from selenium import webdriver  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--window-size=1280,1000"):
    options.add_argument(flag)
  driver = webdriver.Chrome(service=Service(DRIVER), options=options)
  driver.set_page_load_timeout(60)
  try:
    yield driver
  finally:
    driver.quit()


def _canvas(driver):
  deadline = time.monotonic() + 60
  while time.monotonic() < deadline:
    canvases = [c for c in driver.find_elements("css selector", "#sketchpad canvas")
                if c.size["width"] > 100]
    if canvases:
      time.sleep(0.5)  # the app picks the brush once the editor exists
      return canvases[-1]
    time.sleep(0.2)
  raise SystemExit("no drawing canvas in #sketchpad after 60 s")


def _stroke(driver, canvas, points) -> None:
  from selenium.webdriver.common.action_chains import ActionChains  # pylint: disable=g-import-not-at-top
  w, h = canvas.size["width"], canvas.size["height"]
  at = lambda p: (int((p[0] - 0.5) * w), int((p[1] - 0.5) * h))  # offsets from the centre
  chain = ActionChains(driver, duration=20).move_to_element_with_offset(canvas, *at(points[0]))
  chain.click_and_hold()
  for p in points[1:]:
    chain.move_to_element_with_offset(canvas, *at(p))
  chain.release().perform()


def _settle(driver, quiet_s: float = 0.4, limit_s: float = 10) -> None:
  """Until the page has not changed for quiet_s: the steps after the label are done too."""
  deadline = time.monotonic() + limit_s
  while time.monotonic() < deadline:
    if driver.execute_script("return performance.now() - window.__lat.last") > quiet_s * 1000:
      return
    time.sleep(0.05)


def browser_latency(url: str, strokes: int, warm_up: int = 2) -> tuple[list[float], int]:
  """(seconds from each stroke's pointer-up to the label's change, strokes with no change)."""
  with chromium() as driver:
    driver.get(url)
    canvas = _canvas(driver)
    driver.execute_script(WATCH_JS)
    seen, missed, done = [], 0, 0
    while True:
      for digit in DIGITS:
        for points in digit:
          ups = len(driver.execute_script("return window.__lat.ups"))
          _stroke(driver, canvas, points)
          deadline = time.monotonic() + 10
          while time.monotonic() < deadline:
            lat = driver.execute_script("return window.__lat")
            up = lat["ups"][ups] if len(lat["ups"]) > ups else None
            later = [t for t in lat["changes"] if up is not None and t > up]
            if later:
              break
            time.sleep(0.02)
          if done >= warm_up:
            if later:
              seen.append((later[0] - up) / 1000)
            else:
              missed += 1
          done += 1
          _settle(driver)
          if done >= strokes + warm_up:
            return seen, missed
        driver.find_element("css selector", "#clear").click()
        time.sleep(0.3)
        _settle(driver)
        canvas = _canvas(driver)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--url", help="a running demo (default: start one on 127.0.0.1)")
  parser.add_argument("--calls", type=int, default=100)
  parser.add_argument("--clients", type=int, default=50)
  parser.add_argument("--seconds", type=float, default=30)
  parser.add_argument("--strokes", type=int, default=25, help="strokes drawn in Chromium")
  parser.add_argument("--smoke", action="store_true", help="a few calls, clients and strokes")
  args = parser.parse_args()
  warm_up = 10
  if args.smoke:
    args.calls, args.clients, args.seconds, args.strokes, warm_up = 5, 2, 2.0, 3, 2
  with tempfile.TemporaryDirectory() as tmp, (
      contextlib.nullcontext(args.url) if args.url else demo_server()) as url:
    url = url if url.endswith("/") else url + "/"
    image = drawn_seven(Path(tmp) / "seven.png")
    client = Client(url, verbose=False)
    predict = lambda c: c.predict(handle_file(str(image)), api_name="/predict")
    assert predict(client)["label"] == "7"
    for _ in range(warm_up):  # compiled model, warm HTTP connections
      predict(client)

    seq = []
    for _ in range(args.calls):
      t = time.perf_counter()
      predict(client)
      seq.append(time.perf_counter() - t)
    p50, p95 = percentiles(seq)
    print(f"gradio_client, sequential: {args.calls} calls, p50 {p50:.1f} ms, p95 {p95:.1f} ms")

    fn_index = next(i for i, d in enumerate(client.config["dependencies"])
                    if d.get("api_name") == "predict")
    raw = []
    for _ in range(args.calls):
      t = time.perf_counter()
      raw_http(url, image, fn_index)
      raw.append(time.perf_counter() - t)
    r50, r95 = percentiles(raw)
    print(f"raw HTTP (upload + queue/join + SSE), sequential: p50 {r50:.1f} ms, p95 {r95:.1f} ms")

    clients = [Client(url, verbose=False) for _ in range(args.clients)]
    lock, loaded, errors = threading.Lock(), [], []
    stop = time.monotonic() + args.seconds

    def worker(c: Client) -> None:
      while time.monotonic() < stop:
        t = time.perf_counter()
        try:
          ok = predict(c)["label"] == "7"
        except Exception as e:  # pylint: disable=broad-except
          ok, reason = False, f"{type(e).__name__}: {e}"
        else:
          reason = "wrong digit"
        with lock:
          (loaded.append(time.perf_counter() - t) if ok else errors.append(reason))

    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for th in threads:
      th.start()
    for th in threads:
      th.join(args.seconds + 120)
    requests = len(loaded) + len(errors)
    l50, l95 = percentiles(loaded) if loaded else (float("nan"),) * 2
    print(f"{args.clients} concurrent clients for {args.seconds:.0f} s: {requests} requests "
          f"({requests / args.seconds:.1f}/s), {len(errors)} errors, latency p50 {l50:.0f} ms, "
          f"p95 {l95:.0f} ms")
    for reason in sorted(set(errors))[:5]:
      print(f"  error: {reason}")
    summary = f"p50_ms={p50:.1f} p95_ms={p95:.1f} requests={requests} errors={len(errors)}"
    b50 = b95 = float("nan")
    missing = browser_missing()
    if missing:
      print(f"browser: not measured ({missing})")
    elif args.strokes:
      strokes, missed = browser_latency(url, args.strokes, warm_up=1 if args.smoke else 2)
      b50, b95 = percentiles(strokes) if strokes else (float("nan"),) * 2
      print(f"headless Chromium, pointer-up to the label's change: {len(strokes)} strokes "
            f"({missed} without a change), p50 {b50:.0f} ms, p95 {b95:.0f} ms")
    summary += f" browser_p50_ms={b50:.1f} browser_p95_ms={b95:.1f}"
  if SERVER:
    print(f"server RSS {SERVER['rss_before_mb']:.0f} MB before, {SERVER['rss_after_mb']:.0f} MB "
          f"after; upload folder {SERVER['uploads_bytes_live']} bytes while up, "
          f"{SERVER['uploads_bytes_after']} after SIGTERM (exit {SERVER.get('exit_code')})")
    summary += (f" rss_before_mb={SERVER['rss_before_mb']:.0f} rss_after_mb="
                f"{SERVER['rss_after_mb']:.0f} upload_bytes_after={SERVER['uploads_bytes_after']}")
    shutil.rmtree(SERVER["base"], ignore_errors=True)
  print(summary)


if __name__ == "__main__":
  main()
