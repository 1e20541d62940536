"""Jitted, batched evaluation speed on the 10,000 MNIST test images, once compiled.

  JAXDIGITS_RAW_DATA=DIR python benchmarks/evaluate_speed.py [WORKDIR] [--smoke]

Times the model at WORKDIR (a bundle or a training run, as ``jaxdigits.load`` reads it), or
without one the shipped MNIST CNN (configs/cnn.py; the speed does not depend on the values
of the parameters). Each batch size is compiled once, then timed as the median of several
full passes through ``Predictor.logits`` (host uint8 in, numpy logits out, as ``evaluate``
calls it). Last line: ``eval_10k_s=… images_per_s=… batch_size=…`` for the fastest batch
size. ``--smoke``: 1,000 images, batch sizes 125 and 500, two passes each.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time

import jax

import jaxdigits
from jaxdigits.data import load_tfds

BATCH_SIZES = (125, 250, 500, 1000, 2000, 10_000)
REPEATS = 7


def time_pass(predictor, images) -> float:
  start = time.perf_counter()
  predictor.logits(images)  # returns numpy: the device work has finished
  return time.perf_counter() - start


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdir", nargs="?", help="a bundle or a run (default: the shipped CNN)")
  parser.add_argument("--smoke", action="store_true", help="1,000 images, 2 batch sizes")
  args = parser.parse_args()
  predictor = jaxdigits.load(args.workdir)
  if not hasattr(predictor, "batch_size"):
    sys.exit(f"{args.workdir}: not a Flax model; only a Flax model's batch size can be timed")
  images = load_tfds("mnist", "test", stop=1_000 if args.smoke else None).images
  batch_sizes, repeats = ((125, 500), 2) if args.smoke else (BATCH_SIZES, REPEATS)
  print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__} on {jax.devices()[0].platform}; "
        f"model {args.workdir or 'shipped with jaxdigits (configs/cnn.py)'}")
  print(f"{'batch':>7s} {'compile+1st s':>14s} {'median s':>9s} {'images/s':>10s}")
  best = None
  for batch_size in batch_sizes:
    p = dataclasses.replace(predictor, batch_size=batch_size)
    first = time_pass(p, images)
    median = statistics.median(time_pass(p, images) for _ in range(repeats))
    print(f"{batch_size:7d} {first:14.2f} {median:9.3f} {len(images) / median:10.0f}")
    if best is None or median < best[1]:
      best = (batch_size, median)
  batch_size, seconds = best
  print(f"eval_10k_s={seconds * 10_000 / len(images):.3f} "
        f"images_per_s={len(images) / seconds:.0f} batch_size={batch_size}")


if __name__ == "__main__":
  main()
