"""Hyperparameter sweeps: grid or random search, picked on validation, resumable.

  python -m jaxdigits.sweep --config=configs/cnn.py --sweep=configs/sweeps/cnn_lr.py \\
      --workdir=runs/sweep

Every trial is a normal training run in ``WORKDIR/trial_NNN`` (its own checkpoints and
metrics.jsonl, resumable, loadable). Trials that differ only in numeric hyperparameters
(``VMAPPED``) train together as one jitted program, ``jax.vmap`` over their parameters,
optimizer states and hyperparameters, each on the batches it would see alone. The best
trial is chosen on validation accuracy; only that one is evaluated on test.
"""

from __future__ import annotations

import csv
import itertools
import json
import sys
import time
import types
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags


# Fields that may differ inside one vmapped group: they change values, not programs.
VMAPPED = ("seed", "train.learning_rate", "train.weight_decay", "train.momentum")
DISTRIBUTIONS = ("uniform", "log_uniform", "choice")

from jaxdigits.sweeps.runner import *  # noqa: F401,F403  (mechanical split; cleaned up next)


def _main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  f = flags.FLAGS
  try:
    run_sweep(f.config, load_sweep(f.sweep), f.workdir, vmap=f.vmap)
  except (SweepError, config_lib.ConfigError, checkpoints.CheckpointError) as e:
    print(f"jaxdigits.sweep: error: {e}", file=sys.stderr)
    sys.exit(2)


def run() -> None:
  # Flags are defined only when run as a command, so importing the library defines none.
  config_flags.DEFINE_config_file("config", None, "Base training config.", lock_config=False)
  flags.DEFINE_string("sweep", None, "Sweep definition file (configs/sweeps/*.py).")
  flags.DEFINE_string("workdir", None, "Sweep directory; a trial per subfolder; reruns resume.")
  flags.DEFINE_boolean("vmap", True, "Train trials that differ only in numeric "
                       "hyperparameters as one vmapped program (--novmap: one by one).")
  flags.mark_flags_as_required(["config", "sweep", "workdir"])
  app.run(_main)


if __name__ == "__main__":
  run()
