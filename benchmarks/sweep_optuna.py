"""TPE, random and grid search at equal trial counts, and pruning's wall time, on one space.

  python benchmarks/sweep_optuna.py [--trials=8] [--epochs=3] [--train_limit=4096]
      [--prune_trials=16] [--prune_epochs=6] [--prune_train_limit=16384] [--seeds=3]
      [--pruner=successive_halving] [--methods=tpe,random,grid,unpruned,pruned] [--smoke]

The space, for configs/cnn.py: learning rate (log-uniform 3e-4..3e-2), weight decay
(log-uniform 1e-6..1e-2), dropout (uniform 0..0.5), batch size (64, 128, 256); the grid is
``--trials`` points of it (e.g. 8: lr {1e-3, 5e-3} x dropout {0.1, 0.4} x batch {64, 256},
weight decay 1e-4). Two budgets, each stated in the output: the search comparison (tpe,
random, grid) runs ``--trials`` trials of ``--epochs`` epochs on ``--train_limit`` training
digits per study; the pruning comparison (TPE without and with ``--pruner``) runs
``--prune_trials`` of ``--prune_epochs`` on ``--prune_train_limit``, longer trials, since a
trial also costs ~4.5 s that no pruner saves (compiling its programs, initialising, the
best trial's test evaluation): on 3-epoch trials of 4,096 digits that overhead was most of a
trial and pruning saved 15%. Validation is the usual 6,000 digits; trials run one at a time
(batch size and dropout change the programs, so no two trials share one). One study per
method and study seed (``--seeds``: 0, 1, ...; the study seed is also the trials' training
seed), seeds outermost so that a change of load falls on every method alike. Every study
goes through ``sweeps.runner.run_sweep`` in a fresh workdir, so its wall time includes data
loading, compilation, validation, checkpoints and the test evaluation of the best trial,
but not reading the dataset: the splits are read once per process and reused
(``_read_once``), as every trial reads the same ones. JAX's persistent compilation cache is
off: the pruned studies ask the same first trials as the unpruned ones of their seed and
would otherwise load their programs from it.

Best validation accuracy is the best complete trial's, averaged over seeds (in points of
percent in the table, a fraction on the last line); ``pruned_s``/``unpruned_s`` are the total
wall seconds over the seeds. Last line: ``tpe_best_val=… random_best_val=… grid_best_val=…
pruned_s=… unpruned_s=… pruned_best_val=… unpruned_best_val=…``.
``--smoke``: both budgets become two trials of two epochs of a narrow CNN on 1,024 digits,
one seed.
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
flags.DEFINE_integer("prune_trials", 16, "Trials per study of the pruning comparison.")
flags.DEFINE_integer("prune_epochs", 6, "Epochs per trial of the pruning comparison.")
flags.DEFINE_integer("prune_train_limit", 16384, "Training digits per trial of the pruning "
                     "comparison.")
flags.DEFINE_list("methods", ["tpe", "random", "grid", "unpruned", "pruned"], "Which studies "
                  "to run (unpruned/pruned: TPE without/with --pruner at the pruning budget); a "
                  "figure not run prints as nan.")
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


def _budget(base, trials: int, epochs: int, train_limit: int):
  config = base.copy_and_resolve_references()
  config.train.num_epochs, config.data.train_limit = epochs, train_limit
  return config, trials


def main(_):
  logging.set_verbosity(logging.WARNING)
  # Studies of the same seed ask the same first trials: a persistent compilation cache
  # would serve the later study's programs and credit pruning with the saving.
  jax.config.update("jax_enable_compilation_cache", False)
  _read_once()
  base = config_lib.load_file(REPO / "configs" / "cnn.py")
  base.checkpoint.keep, base.progress_bar = 1, False
  search = _budget(base, FLAGS.trials, FLAGS.epochs, FLAGS.train_limit)
  prune = _budget(base, FLAGS.prune_trials, FLAGS.prune_epochs, FLAGS.prune_train_limit)
  seeds = FLAGS.seeds
  if FLAGS.smoke:
    search = prune = (_smoke.shrink(search[0], train__num_epochs=2), 2)
    seeds = 1
  for config, trials in (search, prune):
    if trials not in GRIDS:
      raise app.UsageError(f"--trials and --prune_trials must be one of {sorted(GRIDS)} "
                           "(the grid's sizes)")
    print(f"budget: {trials} trials x {config.train.num_epochs} epochs on "
          f"{config.data.train_limit} digits per study", flush=True)
  print(f"{seeds} study seeds per method; the first budget compares tpe, random and grid, "
        f"the second TPE without and with pruner {FLAGS.pruner}", flush=True)
  studies = {"tpe": ("tpe", "none", search), "random": ("random", "none", search),
             "grid": ("grid", "none", search), "unpruned": ("tpe", "none", prune),
             "pruned": ("tpe", FLAGS.pruner, prune)}
  runs = {k: [] for k in studies}
  # Seeds outermost: a change of load during the run falls on every method alike.
  for seed in range(seeds):
    for name in FLAGS.methods:
      method, pruner, (config, trials) = studies[name]
      best, seconds, pruned = _study(config, _sweep(method, seed, trials, pruner), seed)
      runs[name].append((best, seconds))
      print(f"{name:8s} seed {seed}: best val {100 * best:.2f}%  {seconds:6.1f} s  "
            f"({pruned} of {trials} pruned)", flush=True)
  _summary(runs)


def _summary(runs: dict) -> None:
  mean = {k: float(np.mean([b for b, _ in v])) if v else float("nan") for k, v in runs.items()}
  wall = {k: float(np.sum([s for _, s in v])) if v else float("nan") for k, v in runs.items()}
  print(f"{'method':8s} {'best val (mean)':>16s} {'min':>7s} {'max':>7s} {'wall s':>8s}")
  for k, v in runs.items():
    if not v:
      continue
    bests = [100 * b for b, _ in v]
    print(f"{k:8s} {np.mean(bests):15.2f}% {min(bests):6.2f}% {max(bests):6.2f}% "
          f"{wall[k]:8.1f}")
  print(f"pruning: {100 * (1 - wall['pruned'] / wall['unpruned']):.1f}% less wall time, best "
        f"val {100 * (mean['pruned'] - mean['unpruned']):+.2f} points")
  print(f"tpe_best_val={mean['tpe']:.4f} random_best_val={mean['random']:.4f} "
        f"grid_best_val={mean['grid']:.4f} pruned_s={wall['pruned']:.1f} "
        f"unpruned_s={wall['unpruned']:.1f} pruned_best_val={mean['pruned']:.4f} "
        f"unpruned_best_val={mean['unpruned']:.4f}")


if __name__ == "__main__":
  app.run(main)
