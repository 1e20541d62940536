"""A finished study's results: one row per requested trial, the best on validation tested,
results.csv, the table on stdout and Optuna's own plots.

A trial retried after its worker died has several Optuna trials (the failed ones and its
retry) and one folder; its row is its last attempt. Only COMPLETE trials can be selected;
the selected one alone is evaluated on test.
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import optuna
from absl import logging
from optuna.trial import TrialState

import jaxdigits
from jaxdigits import records
from jaxdigits.analysis import evaluate
from jaxdigits.errors import SweepError
from jaxdigits.sweeps import workers

STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned",
          TrialState.FAIL: "failed"}


def rows(study: optuna.Study, fields: list[str], workdir: Path) -> list[dict[str, Any]]:
  """One row per trial folder, in folder order, from its last attempt."""
  last: dict[str, optuna.trial.FrozenTrial] = {}
  for t in study.get_trials(deepcopy=False):
    name = workers.trial_dir(t)
    if name not in last or t.number > last[name].number:
      last[name] = t
  out = []
  for name in sorted(last):
    t = last[name]
    log = records.read(workdir / name) if (workdir / name / records.FILE).is_file() else None
    final = (log.final if log else None) or {}
    out.append({"trial": name, "number": t.number,
                "state": STATES.get(t.state, t.state.name.lower()),
                **{f: t.params.get(f) for f in fields},
                "val_accuracy": final.get("val_accuracy", t.value),
                "best_epoch": final.get("best_epoch"),
                "epochs": len(log.epochs) if log else None,
                "seconds": t.user_attrs.get("seconds"), "test_accuracy": None})
  return out


def finish(study: optuna.Study, fields: list[str], workdir: Path) -> list[dict[str, Any]]:
  """Tests the best complete trial, writes results.csv, the table and the plots; the rows."""
  table = rows(study, fields, workdir)
  done = [i for i, r in enumerate(table) if r["state"] == "complete"]
  best = max(done, key=lambda i: (table[i]["val_accuracy"], -i)) if done else None
  if best is not None:
    predictor = jaxdigits.load(workdir / table[best]["trial"])  # Flax or classic
    data = predictor.config.data  # only the test split: train and validation are not needed
    test = evaluate.load_eval_split(predictor, data.dataset, "test", raw_dir=data.raw_dir,
                                    data_dir=data.tfds_dir)
    table[best]["test_accuracy"] = evaluate.accuracy(predictor.logits(test.images),
                                                     test.labels)
  _write_csv(table, workdir / "results.csv")
  _print_table(table, best, fields)
  _plots(study, fields, workdir)
  if best is None:
    raise SweepError(f"no trial of the sweep completed ({len(table)} failed or pruned); see "
                     f"{workdir / 'results.csv'} and the trials' folders")
  return table


def _write_csv(table: list[dict[str, Any]], path: Path) -> None:
  tmp = path.with_name(path.name + ".tmp")  # every worker may write it: whole or not at all
  with open(tmp, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(table[0]) if table else ["trial"])
    writer.writeheader()
    writer.writerows(table)
  os.replace(tmp, path)


def _print_table(table: list[dict[str, Any]], best: int | None, fields: list[str]) -> None:
  def acc(v):
    return f"{v:.4f}" if isinstance(v, float) else "-"
  order = sorted(range(len(table)), key=lambda i: -(table[i]["val_accuracy"] or 0.0))
  print(f"{'trial':10s} {'state':8s} " + " ".join(f"{f:>22s}" for f in fields)
        + "   val acc  test acc")
  for i in order:
    r = table[i]
    print(f"{r['trial']:10s} {r['state']:8s} " + " ".join(f"{r[f]!s:>22.22s}" for f in fields)
          + f"   {acc(r['val_accuracy']):>7s}  {acc(r['test_accuracy']):>8s}"
          + ("  <- best on validation" if i == best else ""))


def _plots(study: optuna.Study, fields: list[str], workdir: Path) -> None:
  """Optuna's optimization history, intermediate values (learning curves), parameter
  importances and parallel coordinates as PNGs; a plot Optuna cannot draw is skipped."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from optuna.visualization import matplotlib as plots  # pylint: disable=g-import-not-at-top
  complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
  todo: dict[str, Callable[..., Any]] = {
      "optimization_history.png": plots.plot_optimization_history,
      "intermediate_values.png": plots.plot_intermediate_values,
      "parallel_coordinate.png": plots.plot_parallel_coordinate}
  if complete >= 2 and len(fields) > 1:  # importances compare parameters over trials
    todo["param_importances.png"] = plots.plot_param_importances
  for name, plot in todo.items():
    try:
      # Optuna's plots set the ggplot style for the whole process (plt.style.use): within
      # rc_context it is undone, so plots drawn later in the process keep their colours.
      with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore")  # Optuna's matplotlib plots are "experimental"
        ax = plot(study)
        figure = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        figure.savefig(workdir / name, dpi=100, bbox_inches="tight")
        plt.close(figure)
    except (ValueError, RuntimeError, ZeroDivisionError) as e:
      logging.warning("sweep: %s skipped: %s", name, e)
