"""Jitted, batched evaluation speed on the 10,000 MNIST test images, once compiled.

  JAXDIGITS_RAW_DATA=DIR python benchmarks/evaluate_speed.py [WORKDIR]

With a training WORKDIR its best checkpoint is timed; without one, the model of
configs/cnn.py with freshly initialised parameters (the speed does not depend on the
values). Each batch size is compiled once, then timed as the median of several full passes
through ``Predictor.logits`` (host uint8 in, numpy logits out, as ``evaluate`` calls it).
Last line: ``eval_10k_s=… images_per_s=… batch_size=…`` for the fastest batch size.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax

from jaxdigits import config as config_lib, models
from jaxdigits.data import load_tfds
from jaxdigits.inference.predictor import Predictor

REPO = Path(__file__).resolve().parents[1]
BATCH_SIZES = (125, 250, 500, 1000, 2000, 10_000)
REPEATS = 7


def untrained_predictor() -> Predictor:
  spec = importlib.util.spec_from_file_location("cnn_config", REPO / "configs" / "cnn.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  model = models.build(config.model)
  variables = model.init(jax.random.key(0), jax.numpy.zeros((1, *config_lib.image_shape(
      config.data))), train=False)
  return Predictor(config, model, dict(variables))


def time_pass(predictor: Predictor, images) -> float:
  start = time.perf_counter()
  predictor.logits(images)  # returns numpy: the device work has finished
  return time.perf_counter() - start


def main(argv: list[str]) -> None:
  predictor = Predictor.load(argv[0]) if argv else untrained_predictor()
  images = load_tfds("mnist", "test").images
  print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__} on {jax.devices()[0].platform}; "
        f"model {'from ' + argv[0] if argv else 'configs/cnn.py, untrained'}")
  print(f"{'batch':>7s} {'compile+1st s':>14s} {'median s':>9s} {'images/s':>10s}")
  best = None
  for batch_size in BATCH_SIZES:
    p = dataclasses.replace(predictor, batch_size=batch_size)
    first = time_pass(p, images)
    median = statistics.median(time_pass(p, images) for _ in range(REPEATS))
    print(f"{batch_size:7d} {first:14.2f} {median:9.3f} {len(images) / median:10.0f}")
    if best is None or median < best[1]:
      best = (batch_size, median)
  batch_size, seconds = best
  print(f"eval_10k_s={seconds:.3f} images_per_s={len(images) / seconds:.0f} "
        f"batch_size={batch_size}")


if __name__ == "__main__":
  main(sys.argv[1:])
