"""Running a sweep: every trial a normal run, vmapped groups through the engine, selection.

  python -m jaxdigits.sweep --config=configs/cnn.py --sweep=configs/sweeps/cnn_lr.py \\
      --workdir=runs/sweep

Every trial is a normal training run in ``WORKDIR/trial_NNN`` (its own checkpoints and
metrics.jsonl, resumable, loadable). Trials that differ only in numeric hyperparameters
(``programs.VMAPPED``) train together as one vmapped program of the run engine
(``engine.train_trials``), each on the batches it would see alone. The best trial is
chosen on validation accuracy; only that one is evaluated on test.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any, Sequence

import jax
import ml_collections
from absl import logging

import jaxdigits
from jaxdigits import models, records
from jaxdigits.analysis import evaluate
from jaxdigits.sweeps import spec
from jaxdigits.training import engine


def train_vmapped(configs: Sequence[ml_collections.ConfigDict],
                  workdirs: Sequence[str | Path]) -> list[dict[str, Any]]:
  """Trains trials that differ only in ``VMAPPED`` fields as one vmapped program, never
  testing them; each trial ends where training it alone would, up to float rounding."""
  return engine.train_trials(configs, workdirs, evaluate_test=False)


def run_sweep(base: ml_collections.ConfigDict, sweep: dict[str, Any], workdir: str | Path, *,
              vmap: bool = True) -> list[dict[str, Any]]:
  """Runs (or resumes) every trial, then evaluates the best on validation on test.

  With ``vmap`` (single device, Flax models), each group of trials that differ only in
  ``VMAPPED`` fields trains as one program; otherwise trials train one after another.

  Returns one row per trial (overrides, validation accuracy, best epoch, seconds, and
  test accuracy for the selected trial only) and writes results.csv and plots.
  """
  workdir = Path(workdir)
  trials = spec.expand(sweep, base)
  configs = [spec.trial_config(base, overrides) for overrides in trials]  # all checked first
  workdir.mkdir(parents=True, exist_ok=True)
  dirs = [workdir / f"trial_{i:03d}" for i in range(len(trials))]
  for d, overrides in zip(dirs, trials):
    d.mkdir(exist_ok=True)
    (d / "trial.json").write_text(json.dumps(overrides, indent=1))
  seconds = {}
  for group in spec.group_trials(configs):
    todo = [i for i in group if records.read(dirs[i]).final is None]
    if (vmap and len(todo) > 1 and jax.device_count() == 1
        and base.model.name not in models.CLASSIC):
      logging.info("trials %s: vmapped together", todo)
      start = time.perf_counter()
      train_vmapped([configs[i] for i in todo], [dirs[i] for i in todo])
      seconds.update({i: (time.perf_counter() - start) / len(todo) for i in todo})
      continue
    for i in todo:
      start = time.perf_counter()
      engine.train_and_evaluate(configs[i], dirs[i], evaluate_test=False)
      seconds[i] = time.perf_counter() - start

  rows = []
  for i, (overrides, d) in enumerate(zip(trials, dirs)):
    final = records.read(d).final
    rows.append({"trial": d.name, **overrides, "val_accuracy": final["val_accuracy"],
                 "best_epoch": final["best_epoch"], "seconds": seconds.get(i),
                 "test_accuracy": None})
  best = max(range(len(rows)), key=lambda i: (rows[i]["val_accuracy"], -i))
  predictor = jaxdigits.load(dirs[best])  # a Flax checkpoint or a classic fit
  data = predictor.config.data  # only the test split: train and validation are not needed
  test = evaluate.load_eval_split(predictor, data.dataset, "test", raw_dir=data.raw_dir,
                                  data_dir=data.tfds_dir)
  rows[best]["test_accuracy"] = evaluate.accuracy(predictor.logits(test.images), test.labels)
  _write_results(rows, best, list(sweep["parameters"]), workdir, dirs)
  return rows


def _write_results(rows, best, fields, workdir: Path, dirs: list[Path]) -> None:
  with open(workdir / "results.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  order = sorted(range(len(rows)), key=lambda i: -rows[i]["val_accuracy"])
  print(f"{'trial':10s} " + " ".join(f"{f:>22s}" for f in fields) + "   val acc  test acc")
  for i in order:
    r = rows[i]
    test = f"{r['test_accuracy']:.4f}" if r["test_accuracy"] is not None else "-"
    print(f"{r['trial']:10s} " + " ".join(f"{r[f]!s:>22.22s}" for f in fields)
          + f"   {r['val_accuracy']:.4f}  {test:>8s}"
          + ("  <- best on validation" if i == best else ""))

  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, len(fields), figsize=(4 * len(fields), 3.2), squeeze=False)
  for ax, field in zip(axes[0], fields):
    values = [r[field] for r in rows]
    ax.scatter(values, [r["val_accuracy"] for r in rows])
    numeric = all(isinstance(v, (int, float)) for v in values)
    if numeric and min(values) > 0 and max(values) / min(values) >= 20:
      ax.set_xscale("log")
    ax.set_xlabel(field)
    ax.set_ylabel("validation accuracy")
  fig.tight_layout()
  fig.savefig(workdir / "val_accuracy_vs_params.png", dpi=100)
  plt.close(fig)
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for i in order[:5]:
    epochs = {r["epoch"]: r["val_accuracy"] for r in records.read(dirs[i]).epochs}
    ax.plot(list(epochs), list(epochs.values()), marker="o", label=rows[i]["trial"])
  ax.set_xlabel("epoch")
  ax.set_ylabel("validation accuracy")
  ax.legend()
  fig.tight_layout()
  fig.savefig(workdir / "learning_curves.png", dpi=100)
  plt.close(fig)
