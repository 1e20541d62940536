"""ONNX and StableHLO exports of the shipped CNN: cost, fidelity, speed, start-up.

  python benchmarks/export.py [--calls 200] [--smoke]

Exports the shipped MNIST CNN (``jaxdigits.load()``) to ``model.onnx`` (jax2onnx) and
``model.stablehlo`` (``jax.export``), and reports: export time (conversion plus the
exporter's own probe check) and file size of each; max |logit difference| from JAX and
argmax agreement on the 10,000 MNIST test images for each format; batch-1 latency p50/p95
and batch-500 throughput of JAX (the Predictor), onnxruntime (OnnxPredictor) and the
deserialised StableHLO; and the start-up time of predicting one PNG in a fresh process with
each runtime (process start to printed answer, median of 3). Last line:
onnx_agree=… onnx_max_abs=… stablehlo_agree=… jax_b1_ms=… onnx_b1_ms=… jax_start_s=…
onnx_start_s=…

``--smoke``: a randomly initialised narrow CNN, 200 test images, 20 calls.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _smoke  # pylint: disable=g-import-not-at-top,wrong-import-position

import jaxdigits  # pylint: disable=wrong-import-position
from jaxdigits import config as config_lib, exporters, models  # pylint: disable=wrong-import-position
from jaxdigits.data import load_tfds  # pylint: disable=wrong-import-position
from jaxdigits.exporters import onnx as onnx_export, stablehlo  # pylint: disable=wrong-import-position
from jaxdigits.inference.onnx_runtime import OnnxPredictor  # pylint: disable=wrong-import-position
from jaxdigits.inference.predictor import FlaxPredictor  # pylint: disable=wrong-import-position

REPO = Path(__file__).resolve().parents[1]
# The same work in each runtime's fresh process: load the model, predict one file, print.
START_JAX = ("import sys, jaxdigits; "
             "print(jaxdigits.load(sys.argv[1] or None).predict([sys.argv[2]])[0])")
START_ONNX = ("import sys; from jaxdigits.inference.onnx_runtime import OnnxPredictor; "
              "print(OnnxPredictor.load(sys.argv[1]).predict([sys.argv[2]])[0])")


def smoke_predictor() -> FlaxPredictor:
  config = _smoke.shrink(config_lib.defaults())
  module = models.build(config.model)
  variables = module.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), train=False)
  return FlaxPredictor(config, module, variables)


def timed(fn: Callable[[], object]) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def latency_ms(fn: Callable[[], object], calls: int) -> tuple[float, float]:
  fn()  # compile / warm up
  seconds = [timed(fn) for _ in range(calls)]
  p50, p95 = np.percentile(np.asarray(seconds) * 1000, [50, 95])
  return float(p50), float(p95)


def throughput(fn: Callable[[], object], images: int, repeats: int) -> float:
  fn()
  return images / float(np.median([timed(fn) for _ in range(repeats)]))


def fidelity(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
  return (float(np.max(np.abs(got - want))),
          float(np.mean(got.argmax(-1) == want.argmax(-1))))


def start_up_s(code: str, model: str, image: Path, repeats: int = 3) -> float:
  env = {**os.environ, "PYTHONUNBUFFERED": "1"}
  return float(np.median([timed(lambda: subprocess.run(
      [sys.executable, "-c", code, model, str(image)], check=True, env=env, cwd=REPO,
      stdout=subprocess.DEVNULL)) for _ in range(repeats)]))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--calls", type=int, default=200, help="batch-1 calls per runtime")
  parser.add_argument("--smoke", action="store_true", help="tiny model, 200 images")
  args = parser.parse_args()
  calls = 20 if args.smoke else args.calls
  predictor = smoke_predictor() if args.smoke else jaxdigits.load()
  test = load_tfds("mnist", "test", stop=200 if args.smoke else None)
  out = Path(tempfile.mkdtemp(prefix="jaxdigits-export-"))
  onnx_path, hlo_path = out / exporters.ONNX_FILE, out / exporters.STABLEHLO_FILE

  onnx_s = timed(lambda: onnx_export.to_onnx(exporters.forward_of(predictor, "onnx"),
                                             onnx_path))
  hlo_s = timed(lambda: stablehlo.to_stablehlo(exporters.forward_of(predictor, "stablehlo"),
                                               hlo_path))
  print(f"export: onnx {onnx_s:.2f} s, {onnx_path.stat().st_size / 1e6:.2f} MB; "
        f"stablehlo {hlo_s:.2f} s, {hlo_path.stat().st_size / 1e6:.2f} MB")

  served, loaded = OnnxPredictor.load(onnx_path), stablehlo.load_stablehlo(hlo_path)
  scaled = test.images.astype(np.float32) * np.float32(1 / 255)
  hlo_logits = lambda x: np.concatenate([loaded(x[i:i + 500]) for i in range(0, len(x), 500)])
  want = predictor.logits(test.images)
  onnx_max, onnx_agree = fidelity(served.logits(test.images), want)
  hlo_max, hlo_agree = fidelity(hlo_logits(scaled), want)
  print(f"fidelity on {len(want)} MNIST test images: onnx max_abs={onnx_max:.2e} "
        f"agree={onnx_agree:.4f}; stablehlo max_abs={hlo_max:.2e} agree={hlo_agree:.4f}")

  one, one_scaled = test.images[:1], scaled[:1]
  batch = np.resize(test.images, (500, *test.images.shape[1:]))
  batch_scaled = batch.astype(np.float32) * np.float32(1 / 255)
  runtimes = {"jax": (lambda: predictor.logits(one), lambda: predictor.logits(batch)),
              "onnx": (lambda: served.logits(one), lambda: served.logits(batch)),
              "stablehlo": (lambda: loaded(one_scaled), lambda: loaded(batch_scaled))}
  b1 = {}
  for name, (single, many) in runtimes.items():
    b1[name] = latency_ms(single, calls)
    rate = throughput(many, 500, 3 if args.smoke else 10)
    print(f"{name}: batch-1 p50 {b1[name][0]:.2f} ms p95 {b1[name][1]:.2f} ms; "
          f"batch-500 {rate:,.0f} images/s")

  png = out / "digit.png"
  Image.fromarray(255 - test.images[0, ..., 0]).save(png)  # dark ink on white, as a user's
  repeats = 1 if args.smoke else 3
  jax_start = start_up_s(START_JAX, "", png, repeats)  # the shipped bundle, as predict loads it
  onnx_start = start_up_s(START_ONNX, str(onnx_path), png, repeats)
  print(f"start-up, one PNG in a fresh process: jax {jax_start:.2f} s (shipped model), "
        f"onnx {onnx_start:.2f} s")
  print(f"onnx_agree={onnx_agree:.4f} onnx_max_abs={onnx_max:.2e} "
        f"stablehlo_agree={hlo_agree:.4f} jax_b1_ms={b1['jax'][0]:.2f} "
        f"onnx_b1_ms={b1['onnx'][0]:.2f} jax_start_s={jax_start:.2f} "
        f"onnx_start_s={onnx_start:.2f}")


if __name__ == "__main__":
  main()
