"""Time to 99.0% MNIST test accuracy: jaxdigits' configs/fast.py against the Flax, PyTorch
and Keras example recipes, trained one after the other in the same run on this machine.

  JAXDIGITS_RAW_DATA=DIR python benchmarks/time_to_99.py [--skip=torch] [--target=0.99]
                                                         [--smoke]

What "time to 99%" counts, for every recipe alike: model initialisation, moving the
training data to the device, compilation and the training steps, up to the end of the first
epoch after which the test accuracy is >= target. Not counted: starting Python, importing
libraries, reading the dataset from disk, and evaluating (validation included). Each recipe
runs in a fresh process, so each pays its own compilation.

- jaxdigits: ``python -m jaxdigits.main --config=configs/fast.py``, a fixed 2-epoch schedule
  chosen on validation; the test split is evaluated once, at the end. Its figure is the
  run's ``train_seconds`` (metrics.jsonl: validation passes and checkpoint writes are off
  the clock); the wall time of the whole process is printed beside it.
- Flax, PyTorch and Keras recipes (benchmarks/baselines/): upstream settings, trained on the
  full 60,000-image train split (Keras holds out its last 10% as upstream does), test
  accuracy after every epoch (off the clock), stopped at the first epoch that reaches the
  target. Stopping on test favours the baselines.

The PyTorch and Keras (3, JAX backend) recipes need the bench extra (``pip install -e
'.[bench]'``); without it they are skipped. Last line: ``jaxdigits_s=… flax_s=… torch_s=…
keras_s=… flax_ratio=… torch_ratio=… keras_ratio=…`` (ratio = baseline seconds / jaxdigits
seconds; ``inf`` when a recipe never reached the target, ``nan`` when skipped, with
``torch=skipped`` or ``keras=not_installed`` appended to say why).
``--smoke``: every recipe for one epoch on 1,024 training and 500 test digits, a narrow
jaxdigits CNN.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _smoke
from jaxdigits import records as records_lib

REPO = Path(__file__).resolve().parents[1]
MAX_EPOCHS = {"flax": 10, "torch": 14, "keras": 15}  # the upstream schedules' length
OPTIONAL = ("torch", "keras")  # the bench extra; their recipes are skipped without it
SMOKE_TEST = 500  # test digits in --smoke


def _baseline_worker(name: str, target: float, smoke: bool) -> None:
  """Runs one baseline recipe in this (fresh) process; prints its epoch records as JSON."""
  sys.path.insert(0, str(REPO))
  from jaxdigits.data import load_tfds  # pylint: disable=g-import-not-at-top
  recipe = importlib.import_module(f"benchmarks.baselines.{name}_recipe")
  train = load_tfds("mnist", "train", stop=_smoke.TRAIN_LIMIT if smoke else None)
  test = load_tfds("mnist", "test", stop=SMOKE_TEST if smoke else None)
  records = recipe.train(train.images, train.labels, test.images, test.labels,
                         epochs=1 if smoke else MAX_EPOCHS[name], target=target)
  print("RECORDS " + json.dumps(records), flush=True)


def run_baseline(name: str, target: float, timeout: float, smoke: bool) -> dict:
  out = subprocess.run([sys.executable, __file__, f"--worker={name}", f"--target={target}",
                        *(["--smoke"] if smoke else [])],
                       cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
  lines = [l for l in out.stdout.splitlines() if l.startswith("RECORDS ")]
  if out.returncode or not lines:
    raise RuntimeError(f"{name} baseline failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
  records = json.loads(lines[-1][len("RECORDS "):])
  for r in records:
    print(f"  {name} epoch {r['epoch']}: test {r['test_accuracy']:.4f} after "
          f"{r['train_seconds']:.1f} s", flush=True)
  last = records[-1]
  reached = last["test_accuracy"] >= target
  return {"seconds": last["train_seconds"] if reached else math.inf, "epochs": last["epoch"],
          "test_accuracy": last["test_accuracy"]}


def run_jaxdigits(config: str, target: float, overrides: list[str]) -> dict:
  with tempfile.TemporaryDirectory() as workdir:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jaxdigits.main", f"--config={config}",
                    f"--workdir={workdir}", "--config.progress_bar=False", *overrides],
                   cwd=REPO, check=True)
    wall = time.perf_counter() - start
    log = records_lib.read(workdir)
  final = log.final
  for r in log.epochs:
    print(f"  jaxdigits epoch {r['epoch']}: validation {r['val_accuracy']:.4f}, "
          f"{r['epoch_seconds']:.1f} s, {r['images_per_second']:.0f} img/s", flush=True)
  print(f"  jaxdigits: test {final['test_accuracy']:.4f}, train_seconds "
        f"{final['train_seconds']:.2f} (compilation {final['compile_seconds']:.2f}), "
        f"whole process {wall:.1f} s", flush=True)
  reached = final["test_accuracy"] >= target
  return {"seconds": final["train_seconds"] if reached else math.inf,
          "epochs": log.epochs[-1]["epoch"], "test_accuracy": final["test_accuracy"],
          "compile_seconds": final["compile_seconds"], "wall": wall}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--target", type=float, default=0.99)
  parser.add_argument("--config", default="configs/fast.py")
  parser.add_argument("--skip", default="", help="comma-separated baselines to skip")
  parser.add_argument("--timeout", type=float, default=3600, help="seconds per baseline")
  parser.add_argument("--smoke", action="store_true", help="tiny data, one epoch each")
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    _baseline_worker(args.worker, args.target, args.smoke)
    return
  print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        flush=True)
  overrides = _smoke.flags() if args.smoke else []
  results = {"jaxdigits": run_jaxdigits(args.config, args.target, overrides)}
  skipped = {name: "skipped" for name in args.skip.split(",") if name}
  for name in OPTIONAL:
    if name not in skipped and importlib.util.find_spec(name) is None:
      skipped[name] = "not_installed"
      print(f"  {name} is not installed (pip install -e '.[bench]'): its recipe is skipped")
  for name in MAX_EPOCHS:
    if name in skipped:
      results[name] = {"seconds": math.nan, "epochs": 0, "test_accuracy": math.nan}
      continue
    results[name] = run_baseline(name, args.target, args.timeout, args.smoke)

  ours = results["jaxdigits"]["seconds"]
  print(f"\n| recipe | epochs | test accuracy | time to {args.target:.1%} (s) | x jaxdigits |")
  print("|---|---|---|---|---|")
  for name, r in results.items():
    print(f"| {name} | {r['epochs']} | {r['test_accuracy']:.4f} | {r['seconds']:.1f} | "
          f"{r['seconds'] / ours:.1f} |")
  print(f"jaxdigits_s={ours:.2f} "
        + "".join(f"{name}_s={results[name]['seconds']:.2f} " for name in MAX_EPOCHS)
        + " ".join(f"{name}_ratio={results[name]['seconds'] / ours:.2f}" for name in MAX_EPOCHS)
        + "".join(f" {name}={why}" for name, why in skipped.items() if name in results))


if __name__ == "__main__":
  main()
