"""ONNX and StableHLO exports of the shipped CNN: cost, fidelity, speed, start-up of predict.

  python benchmarks/export.py [--calls 200] [--smoke]

Bundles the shipped MNIST CNN's variables again (``bundle.save``, which writes
``model.onnx`` with jax2onnx and ``model.stablehlo`` with ``jax.export`` and checks each on
a probe batch) and reports: the time of each exporter, first in the process (conversion
plus its probe check, the converters already imported), then of a whole bundle, and each
file's size; max |logit difference| from JAX and argmax agreement on the 10,000 MNIST test
images, for the bundle's ONNX (served by ``jaxdigits.load(bundle, runtime="onnx")``) and
StableHLO files; batch-1 latency p50/p95 and batch-500 throughput of JAX (the Predictor),
onnxruntime and the deserialised StableHLO; and the start-up of the real command on one PNG
with each runtime, process start to printed answer (median of 3):

  python -m jaxdigits.predict --checkpoint=BUNDLE [--runtime=onnx] digit.png

Last line: onnx_agree=… onnx_max_abs=… stablehlo_agree=… jax_b1_ms=… onnx_b1_ms=…
jax_start_s=… onnx_start_s=…

``--smoke``: a randomly initialised narrow CNN, 200 test images, 20 calls, one start each.
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
# pylint: disable=g-import-not-at-top,wrong-import-position
import _smoke

import jaxdigits
from jaxdigits import bundle, config as config_lib, exporters, manifest, models
from jaxdigits.data import load_tfds
from jaxdigits.exporters import onnx as onnx_export, stablehlo
from jaxdigits.inference.predictor import FlaxPredictor
# pylint: enable=g-import-not-at-top,wrong-import-position

REPO = Path(__file__).resolve().parents[1]


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


def start_up_s(model: Path, runtime: str, image: Path, repeats: int) -> float:
  """Process start to printed answer of the predict command."""
  command = [sys.executable, "-m", "jaxdigits.predict", f"--checkpoint={model}",
             f"--runtime={runtime}", str(image)]
  env = {**os.environ, "PYTHONUNBUFFERED": "1"}
  return float(np.median([timed(lambda: subprocess.run(
      command, check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL))
                          for _ in range(repeats)]))


def export(predictor: FlaxPredictor, out: Path) -> Path:
  """Times each exporter alone, then bundles the variables (both exports again, checked)."""
  # Imported first: importing them is not the conversion's cost.
  import jax2onnx, onnxruntime  # noqa: F401  pylint: disable=g-import-not-at-top,multiple-imports
  onnx_s = timed(lambda: onnx_export.to_onnx(exporters.forward_of(predictor, "onnx"),
                                             out / manifest.ONNX))
  hlo_s = timed(lambda: stablehlo.to_stablehlo(exporters.forward_of(predictor, "stablehlo"),
                                               out / manifest.STABLEHLO))
  path = out / "bundle"
  card = bundle.model_card(predictor.config, predictor.variables, {})
  bundle_s = timed(lambda: bundle.save(path, predictor.config, predictor.variables, card))
  sizes = {name: (path / name).stat().st_size / 1e6 for name in (manifest.ONNX,
                                                                 manifest.STABLEHLO)}
  # The first conversion in a process includes jax2onnx loading its plugins and JAX tracing
  # the model once; the bundle after it shows what a repeated export costs.
  print(f"export, first in this process: onnx {onnx_s:.2f} s, {sizes[manifest.ONNX]:.2f} MB; "
        f"stablehlo {hlo_s:.2f} s, {sizes[manifest.STABLEHLO]:.2f} MB; then a whole bundle "
        f"(variables, both exports, their checks) {bundle_s:.2f} s")
  return path


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--calls", type=int, default=200, help="batch-1 calls per runtime")
  parser.add_argument("--smoke", action="store_true", help="tiny model, 200 images")
  args = parser.parse_args()
  calls = 20 if args.smoke else args.calls
  test = load_tfds("mnist", "test", stop=200 if args.smoke else None)
  path = export(smoke_predictor() if args.smoke else jaxdigits.load(),
                Path(tempfile.mkdtemp(prefix="jaxdigits-export-")))

  predictor, served = jaxdigits.load(path), jaxdigits.load(path, runtime="onnx")
  loaded = stablehlo.load_stablehlo(path / manifest.STABLEHLO)
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

  png = path.parent / "digit.png"
  Image.fromarray(255 - test.images[0, ..., 0]).save(png)  # dark ink on white, as a user's
  repeats = 1 if args.smoke else 3
  start = {runtime: start_up_s(path, runtime, png, repeats) for runtime in ("jax", "onnx")}
  print(f"start-up of python -m jaxdigits.predict on one PNG (process start to answer): "
        f"--runtime=jax {start['jax']:.2f} s, --runtime=onnx {start['onnx']:.2f} s")
  print(f"onnx_agree={onnx_agree:.4f} onnx_max_abs={onnx_max:.2e} "
        f"stablehlo_agree={hlo_agree:.4f} jax_b1_ms={b1['jax'][0]:.2f} "
        f"onnx_b1_ms={b1['onnx'][0]:.2f} jax_start_s={start['jax']:.2f} "
        f"onnx_start_s={start['onnx']:.2f}")


if __name__ == "__main__":
  main()
