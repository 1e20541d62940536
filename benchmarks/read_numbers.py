"""Reading whole numbers: composed from MNIST test digits, read with the shipped model.

    JAXDIGITS_RAW_DATA=DIR python benchmarks/read_numbers.py [--numbers=500] [--seed=0] [--smoke]
        [--digits=test|validation] [--tta] [--show-errors] [--endpoint=N]

Each number has 2-6 MNIST test digits on a wide canvas: a random digit height per number
(18-64 px) and a little per digit, baseline jitter, gaps of 5-50% of the height, and in ~20%
of numbers one or two pairs pushed together until their ink touches; half are then inverted
to dark on white. ``numbers.read_number`` reads each with ``jaxdigits.load()``. Prints the
share read exactly and of digits right (over all numbers, by length, touching or not), the
seconds per number (after one warm-up read that compiles the model), and ends with
``numbers=… exact=… digits=… touching_exact=… s_per_number=…``. ``--endpoint=N`` also reads
the first N numbers (as PNG files) through the demo's ``/predict_number`` endpoint with
gradio_client, from a demo server it starts, and adds ``endpoint_numbers=… endpoint_exact=…
endpoint_digits=… endpoint_s_per_number=…``. ``--smoke``: 20 numbers.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image
from scipy import ndimage

import jaxdigits
from jaxdigits.data import load_tfds
from jaxdigits.inference import numbers

TOUCHING_SHARE = 0.2


def _scaled_ink(digit: np.ndarray, height: float) -> np.ndarray:
  """The digit's ink box, resized so that a 20-px MNIST digit becomes ``height`` px."""
  rows, cols = np.nonzero(digit > 0)
  crop = digit[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
  scale = height / 20
  size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
  return np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS))


def _touch_offset(left: np.ndarray, right: np.ndarray, x: int, top: int) -> int:
  """How far right of the boxes' edge-to-edge position ``right`` may sit so that its ink
  touches ``left`` (the canvas so far): the largest x at which the two ink masks meet."""
  near = ndimage.binary_dilation(left > 64, np.ones((3, 3), bool))
  h, w = right.shape
  for shift in range(0, w // 2 + 1):
    window = near[top:top + h, x - shift:x - shift + w]
    if (window & (right[:, :window.shape[1]] > 64)).any():
      return x - shift
  return x - w // 2


def compose(digits: list[np.ndarray], rng: np.random.Generator, touching: bool,
            all_touching: bool = False) -> np.ndarray:
  """One number: MNIST digits [28,28] bright on black → a uint8 canvas, bright on black.
  ``touching``: one or two neighbouring pairs touch; ``all_touching``: every pair does."""
  return compose_with_boxes(digits, rng, touching, all_touching)[0]


def compose_with_boxes(digits: list[np.ndarray], rng: np.random.Generator, touching: bool,
                       all_touching: bool = False
                       ) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
  """``compose``, and each digit's ink box (x0, y0, x1, y1) on the canvas."""
  height = rng.uniform(18, 64)
  inks = [_scaled_ink(d, height * rng.uniform(0.9, 1.1)) for d in digits]
  pairs = set()
  if touching:
    pairs = set(rng.choice(len(digits) - 1, size=min(len(digits) - 1, rng.integers(1, 3)),
                           replace=False).tolist())
  if all_touching:
    pairs = set(range(len(digits) - 1))
  margin = round(height * rng.uniform(0.3, 1.5))
  width = margin * 2 + sum(i.shape[1] for i in inks) + round(height * 0.5) * len(inks)
  canvas = np.zeros((round(height * 1.6) + 2 * margin, width), np.uint8)
  baseline = margin + round(height * 1.2)
  x, boxes = margin, []
  for i, ink in enumerate(inks):
    top = baseline - ink.shape[0] + round(rng.normal(0, 0.05 * height))
    top = int(np.clip(top, 0, canvas.shape[0] - ink.shape[0]))
    if i - 1 in pairs:
      x = _touch_offset(canvas, ink, x, top) - int(rng.integers(0, max(1, height // 12)))
    elif i:
      x += round(height * rng.uniform(0.05, 0.5))
    region = canvas[top:top + ink.shape[0], x:x + ink.shape[1]]
    np.maximum(region, ink, out=region)
    boxes.append((x, top, x + ink.shape[1], top + ink.shape[0]))
    x += ink.shape[1]
  return canvas[:, :x + margin], boxes


def composed_numbers(images: np.ndarray, labels: np.ndarray, count: int, seed: int
                     ) -> list[tuple[np.ndarray, str, bool]]:
  """``count`` (canvas, number, touching) triples; half the canvases dark on white."""
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(count):
    idx = rng.integers(0, len(images), size=rng.integers(2, 7))
    touching = bool(rng.random() < TOUCHING_SHARE)
    canvas = compose([images[i] for i in idx], rng, touching)
    if rng.random() < 0.5:
      canvas = 255 - canvas
    out.append((canvas, "".join(str(int(labels[i])) for i in idx), touching))
  return out


def matched(truth: str, read: str) -> int:
  """Digits of ``truth`` read right: the longest common subsequence, so that one missed
  or extra digit does not count every later one as wrong."""
  row = [0] * (len(read) + 1)
  for a in truth:
    prev = 0
    for j, b in enumerate(read):
      prev, row[j + 1] = row[j + 1], prev + 1 if a == b else max(row[j + 1], row[j])
  return row[-1]


@contextlib.contextmanager
def demo_server() -> Iterator[str]:
  """The URL of ``python -m jaxdigits.demo`` on a free local port; SIGKILLed after."""
  import httpx  # pylint: disable=g-import-not-at-top
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  base = tempfile.mkdtemp(prefix="read-numbers-")  # TMPDIR: the demo's upload folder
  proc = subprocess.Popen([sys.executable, "-m", "jaxdigits.demo", "--host", "127.0.0.1",
                           "--port", str(port)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True,
                          env={**os.environ, "TMPDIR": base})
  url = f"http://127.0.0.1:{port}/"
  try:
    deadline = time.monotonic() + 120
    while True:
      with contextlib.suppress(httpx.HTTPError):
        if httpx.get(url, timeout=2).status_code == 200:
          break
      if proc.poll() is not None or time.monotonic() > deadline:
        raise SystemExit(f"the demo server did not start (exit code {proc.poll()})")
      time.sleep(0.5)
    yield url
  finally:
    # SIGKILL: a JAX process can sit in a thread that ignores SIGTERM.
    with contextlib.suppress(ProcessLookupError):
      os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def endpoint_readings(cases: list[tuple[np.ndarray, str, bool]]) -> tuple[list[str], float]:
  """Each canvas read by the demo's ``/predict_number`` through gradio_client, as PNG files
  (a rejected image reads as ""), and the seconds per number."""
  from gradio_client import Client, handle_file  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as folder, demo_server() as url:
    client = Client(url, verbose=False)
    paths = []
    for i, (canvas, _, _) in enumerate(cases):
      paths.append(Path(folder) / f"number{i}.png")
      Image.fromarray(canvas).save(paths[-1])
    client.predict(handle_file(str(paths[0])), api_name="/predict_number")  # warm-up
    start, read = time.perf_counter(), []
    for path in paths:
      reading = client.predict(handle_file(str(path)), api_name="/predict_number")
      read.append(reading.get("number") or "")
    return read, (time.perf_counter() - start) / len(cases)


def shares(cases: list[tuple[np.ndarray, str, bool]], read: list[str]) -> tuple[float, float]:
  """The share of numbers read exactly and of digits right."""
  exact = np.mean([r == truth for r, (_, truth, _) in zip(read, cases)])
  right = sum(matched(truth, r) for r, (_, truth, _) in zip(read, cases))
  return float(exact), right / sum(len(truth) for _, truth, _ in cases)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--numbers", type=int, default=500)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--smoke", action="store_true", help="20 numbers")
  parser.add_argument("--digits", choices=("test", "validation"), default="test",
                      help="validation: the last 6,000 train digits (the shipped model's "
                      "validation split), to tune segmentation without looking at test")
  parser.add_argument("--show-errors", action="store_true", help="print each misread number")
  parser.add_argument("--endpoint", type=int, default=0, metavar="N",
                      help="also read the first N numbers through the demo's /predict_number "
                      "endpoint (gradio_client, a demo server started here)")
  parser.add_argument("--tta", action="store_true",
                      help="read each digit with test-time augmentation (jaxdigits.load(tta=True))")
  args = parser.parse_args()
  count = 20 if args.smoke else args.numbers
  data = (load_tfds("mnist", "test") if args.digits == "test" else
          load_tfds("mnist", "train", start=54_000))
  cases = composed_numbers(np.asarray(data.images)[..., 0], np.asarray(data.labels), count,
                           args.seed)
  predictor = jaxdigits.load(tta=args.tta)
  numbers.read_number(predictor, cases[0][0])  # compiles the model's batch sizes
  stats = collections.defaultdict(lambda: np.zeros(4))  # numbers, exact, digits, right
  start, refused, unrefused_exact = time.perf_counter(), 0, 0
  for i, (canvas, truth, touching) in enumerate(cases):
    reading = numbers.read_number(predictor, canvas)
    # A number the not-a-digit detector refuses is not read exactly; its digits still count.
    read, digits_read = reading.number, "".join(str(d.digit) for d in reading.digits)
    refused += read is None
    unrefused_exact += digits_read == truth
    row = np.array([1, read == truth, len(truth), matched(truth, digits_read)])
    for key in ("all", f"length {len(truth)}", "touching" if touching else "apart"):
      stats[key] += row
    if args.show_errors and read != truth:
      print(f"  #{i}: {truth} read as {read}{' (touching)' if touching else ''}"
            + (f" ({reading.reason})" if read is None else ""))
  seconds = (time.perf_counter() - start) / count
  for key in sorted(stats, key=lambda k: (k != "all", k)):
    n, exact, digits, right = stats[key]
    print(f"{key:>10}: {int(n):4d} numbers, {exact / n:.4f} exact, {right / digits:.4f} of "
          f"{int(digits)} digits right")
  n, exact, digits, right = stats["all"]
  touching = stats["touching"]
  line = (f"numbers={int(n)} exact={exact / n:.4f} digits={right / digits:.4f} "
          f"touching_exact={touching[1] / max(touching[0], 1):.4f} refused={refused} "
          f"exact_without_detector={unrefused_exact / n:.4f} "
          f"s_per_number={seconds:.4f}")
  if args.endpoint:
    some = cases[:args.endpoint]
    read, seconds = endpoint_readings(some)
    exact, right = shares(some, read)
    print(f"  endpoint /predict_number: {len(some)} numbers, {exact:.4f} exact, {right:.4f} of "
          f"digits right, {seconds:.3f} s per number")
    if args.show_errors:
      for i, (r, (_, truth, _)) in enumerate(zip(read, some)):
        if r != truth:
          print(f"  endpoint #{i}: {truth} read as {r or None}")
    line += (f" endpoint_numbers={len(some)} endpoint_exact={exact:.4f} "
             f"endpoint_digits={right:.4f} endpoint_s_per_number={seconds:.4f}")
  print(line)


if __name__ == "__main__":
  main()
