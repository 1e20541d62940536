"""TPE, random and grid search at equal trial counts, and pruning's wall time, on one space.

  python benchmarks/sweep_optuna.py [--trials=8] [--epochs=3] [--train_limit=4096]
      [--seeds=3] [--pruner=successive_halving] [--smoke]

The space, for configs/cnn.py: learning rate (log-uniform 3e-4..3e-2), weight decay
(log-uniform 1e-6..1e-2), dropout (uniform 0..0.5), batch size (64, 128, 256); the grid is
``--trials`` points of it (e.g. 8: lr {1e-3, 5e-3} x dropout {0.1, 0.4} x batch {64, 256},
weight decay 1e-4). The budget: every study has ``--trials`` trials of ``--epochs`` epochs on
``--train_limit`` training digits (validated on the usual 6,000), one trial at a time (the
space has non-vmapped fields), one study per method and study seed (``--seeds``: 0, 1, ...;
the study seed is also the trials' training seed). Every study goes through
``sweeps.runner.run_sweep`` in a fresh workdir, so its wall time includes data loading,
compilation, validation, checkpoints and the test evaluation of the best trial, but not
reading the dataset: the splits are read once per process and reused (``_read_once``), as
every trial reads the same ones; on a busy 2-core box reading them took ~50 s a trial.
JAX's persistent compilation cache is off: the pruned TPE studies ask the same first trials
as the unpruned ones of their seed and would otherwise load their programs from it.

Best validation accuracy is the best complete trial's, averaged over seeds (in points of
percent in the table, a fraction on the last line). Pruning: TPE studies with ``--pruner``
against the same TPE studies without one; ``pruned_s``/``unpruned_s`` are their total wall
seconds over the seeds. Last line: ``tpe_best_val=… random_best_val=… grid_best_val=…
pruned_s=… unpruned_s=… pruned_best_val=… unpruned_best_val=…``.
``--smoke``: two trials of two epochs of a narrow CNN on 1,024 digits, one seed.
"""

from __future__ import annotations

import contextlib
import functools
import io
import tempfile
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
from absl import app, flags, logging

import _smoke
from jaxdigits import config as config_lib
from jaxdigits.analysis import evaluate
from jaxdigits.data import pipeline
from jaxdigits.sweeps import runner as sweep

flags.DEFINE_integer("trials", 8, "Trials per study (a grid of that size: 2, 4, 8, 12 or 16).")
flags.DEFINE_integer("epochs", 3, "Epochs per trial.")
flags.DEFINE_integer("train_limit", 4096, "Training digits per trial.")
flags.DEFINE_integer("seeds", 3, "Study seeds per method.")
flags.DEFINE_string("pruner", "successive_halving", "Pruner of the pruned TPE studies.")
flags.DEFINE_list("methods", ["tpe", "random", "grid", "pruned"], "Which studies to run, in "
                  "order (pruned: TPE with --pruner); a figure not run prints as nan.")
flags.DEFINE_bool("smoke", False, "Two short trials of a narrow CNN, one seed: a quick check.")
FLAGS = flags.FLAGS
REPO = Path(__file__).resolve().parents[1]

SPACE = {
    "train.learning_rate": {"distribution": "log_uniform", "min": 3e-4, "max": 3e-2},
    "train.weight_decay": {"distribution": "log_uniform", "min": 1e-6, "max": 1e-2},
    "model.dropout": {"distribution": "uniform", "min": 0.0, "max": 0.5},
    "train.batch_size": {"distribution": "choice", "values": [64, 128, 256]},
}
# Grid levels by trial count: (learning rates, dropouts, batch sizes), weight decay 1e-4.
GRIDS = {2: ([1e-3, 5e-3], [0.25], [128]), 4: ([1e-3, 5e-3], [0.1, 0.4], [128]),
         8: ([1e-3, 5e-3], [0.1, 0.4], [64, 256]),
         12: ([1e-3, 3e-3, 1e-2], [0.1, 0.4], [64, 256]),
         16: ([1e-3, 3e-3, 5e-3, 1e-2], [0.1, 0.4], [64, 256])}


def _sweep(method: str, seed: int, trials: int, pruner: str = "none") -> dict:
  if method == "grid":
    lrs, dropouts, batches = GRIDS[trials]
    return {"method": "grid", "pruner": pruner, "parameters": {
        "train.learning_rate": lrs, "train.weight_decay": [1e-4], "model.dropout": dropouts,
        "train.batch_size": batches}}
  return {"method": method, "num_trials": trials, "seed": seed, "pruner": pruner,
          "parameters": SPACE}


def _read_once() -> None:
  """Every trial of every study reads the same splits: read them once (the same CNN input
  format for every trial, so the test split is keyed on its source only)."""
  splits, tests = functools.cache(pipeline.load_splits), {}
  pipeline.load_splits = lambda data: splits(ml_collections.FrozenConfigDict(data))
  load_eval_split = evaluate.load_eval_split

  def test_split(predictor, dataset, split, **kw):
    key = (dataset, split, *sorted(kw.items()))
    if key not in tests:
      tests[key] = load_eval_split(predictor, dataset, split, **kw)
    return tests[key]

  evaluate.load_eval_split = test_split


def _study(base, definition: dict, seed: int) -> tuple[float, float, int]:
  """(best validation accuracy, wall seconds, pruned trials) of one study."""
  config = config_lib.validate(base.copy_and_resolve_references())
  config.seed = seed
  with tempfile.TemporaryDirectory() as workdir, contextlib.redirect_stdout(io.StringIO()):
    start = time.perf_counter()
    rows = sweep.run_sweep(config, definition, workdir)
    seconds = time.perf_counter() - start
  best = max(r["val_accuracy"] for r in rows if r["state"] == "complete")
  return best, seconds, sum(r["state"] == "pruned" for r in rows)


def main(_):
  logging.set_verbosity(logging.WARNING)
  # Studies of the same seed ask the same first trials: a persistent compilation cache
  # would serve the later study's programs and credit pruning with the saving.
  jax.config.update("jax_enable_compilation_cache", False)
  _read_once()
  base = config_lib.load_file(REPO / "configs" / "cnn.py")
  base.train.num_epochs, base.data.train_limit = FLAGS.epochs, FLAGS.train_limit
  base.checkpoint.keep, base.progress_bar = 1, False
  trials, seeds = FLAGS.trials, FLAGS.seeds
  if FLAGS.smoke:
    _smoke.shrink(base, train__num_epochs=2)
    trials, seeds = 2, 1
  if trials not in GRIDS:
    raise app.UsageError(f"--trials must be one of {sorted(GRIDS)} (the grid's sizes)")
  print(f"budget: {trials} trials x {base.train.num_epochs} epochs on "
        f"{base.data.train_limit} digits per study, {seeds} study seeds per method; "
        f"pruner {FLAGS.pruner} for the pruned TPE studies", flush=True)
  studies = {"tpe": ("tpe", "none"), "random": ("random", "none"), "grid": ("grid", "none"),
             "pruned": ("tpe", FLAGS.pruner)}
  runs = {k: [] for k in studies}
  for name in FLAGS.methods:
    method, pruner = studies[name]
    for seed in range(seeds):
      best, seconds, pruned = _study(base, _sweep(method, seed, trials, pruner), seed)
      runs[name].append((best, seconds))
      print(f"{name:7s} seed {seed}: best val {100 * best:.2f}%  {seconds:6.1f} s  "
            f"({pruned} of {trials} pruned)", flush=True)
  mean = {k: float(np.mean([b for b, _ in v])) if v else float("nan") for k, v in runs.items()}
  wall = {k: float(np.sum([s for _, s in v])) if v else float("nan") for k, v in runs.items()}
  print(f"{'method':8s} {'best val (mean)':>16s} {'min':>7s} {'max':>7s} {'wall s':>8s}")
  for k, v in runs.items():
    if not v:
      continue
    bests = [100 * b for b, _ in v]
    print(f"{k:8s} {np.mean(bests):15.2f}% {min(bests):6.2f}% {max(bests):6.2f}% "
          f"{wall[k]:8.1f}")
  print(f"pruning: {100 * (1 - wall['pruned'] / wall['tpe']):.1f}% less wall time, best val "
        f"{100 * (mean['pruned'] - mean['tpe']):+.2f} points")
  print(f"tpe_best_val={mean['tpe']:.4f} random_best_val={mean['random']:.4f} "
        f"grid_best_val={mean['grid']:.4f} pruned_s={wall['pruned']:.1f} "
        f"unpruned_s={wall['tpe']:.1f} pruned_best_val={mean['pruned']:.4f} "
        f"unpruned_best_val={mean['tpe']:.4f}")


if __name__ == "__main__":
  app.run(main)
