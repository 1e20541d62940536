"""16 CNN trials (configs/sweeps/cnn_lr.py) trained vmapped versus one after another.

  python benchmarks/sweep_vmap.py [--epochs=1] [--train_limit=12800] [--smoke]

Both runs go through ``sweep.run_sweep`` (same trials, same selection on validation, test
evaluated for the selected trial only) in fresh workdirs; wall time covers data loading,
compilation, training and evaluation. Last line: ``sequential_s=… vmapped_s=… speedup=…``.
``--smoke``: two of the trials (two learning rates), a narrow CNN on 1,024 digits.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from absl import app, flags, logging

import _smoke
from jaxdigits import config as config_lib
from jaxdigits.sweeps import runner as sweep, spec

flags.DEFINE_integer("epochs", 1, "Epochs per trial.")
flags.DEFINE_integer("train_limit", 12_800, "Training examples per trial (0: all 54,000).")
flags.DEFINE_bool("smoke", False, "Two trials of a narrow CNN on tiny data: a quick check.")
FLAGS = flags.FLAGS
REPO = Path(__file__).resolve().parents[1]


def main(_):
  logging.set_verbosity(logging.WARNING)
  base = config_lib.load_file(REPO / "configs" / "cnn.py")
  base.train.num_epochs = FLAGS.epochs
  base.data.train_limit = FLAGS.train_limit
  base.progress_bar = False
  definition = spec.load_sweep(REPO / "configs" / "sweeps" / "cnn_lr.py")
  if FLAGS.smoke:
    _smoke.shrink(base)
    grid = definition["parameters"]
    definition["parameters"] = {"train.learning_rate": grid["train.learning_rate"][:2],
                                "train.weight_decay": grid["train.weight_decay"][:1]}
  results = {}
  for name, vmap in (("vmapped", True), ("sequential", False)):
    with tempfile.TemporaryDirectory() as workdir:
      start = time.perf_counter()
      rows = sweep.run_sweep(base, definition, workdir, vmap=vmap)
      seconds = time.perf_counter() - start
    best = next(r for r in rows if r["test_accuracy"] is not None)
    results[name] = (seconds, best)
    print(f"{name}: {len(rows)} trials in {seconds:.1f} s; best on validation "
          f"lr={best['train.learning_rate']} wd={best['train.weight_decay']} "
          f"val={best['val_accuracy']:.4f} test={best['test_accuracy']:.4f}", flush=True)
  seq, vm = results["sequential"][0], results["vmapped"][0]
  print(f"trials={len(rows)} epochs={base.train.num_epochs} "
        f"train_examples={base.data.train_limit or 54000}")
  print(f"sequential_s={seq:.1f} vmapped_s={vm:.1f} speedup={seq / vm:.2f}")


if __name__ == "__main__":
  app.run(main)
