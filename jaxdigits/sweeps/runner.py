"""Running a sweep on an Optuna study: ask trials, train them with the engine, tell results.

  python -m jaxdigits.sweep --config=configs/cnn.py --sweep=configs/sweeps/cnn_lr.py \\
      --workdir=runs/sweep

The study lives in ``WORKDIR/study.journal`` (or ``storage``, a database URL); several
processes running the same command share it (``sweeps.workers``). Every trial is a normal
training run in ``WORKDIR/trial_NNN`` (its own checkpoints and metrics.jsonl, resumable,
loadable). Trials asked together that differ only in numeric hyperparameters
(``programs.VMAPPED``) train as one vmapped program of the run engine
(``engine.train_trials``). Each epoch's validation accuracy is reported to the study, whose
pruner may stop a trial there. The best complete trial is chosen on validation accuracy;
only that one is evaluated on test (``sweeps.results``).
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import jax
import ml_collections
import optuna
from absl import logging
from optuna.trial import TrialState

from jaxdigits import models, records
from jaxdigits.errors import JaxdigitsError
from jaxdigits.sweeps import results, space, spec, workers
from jaxdigits.training import engine
from jaxdigits.training.programs import VMAPPED


def train_vmapped(configs: Sequence[ml_collections.ConfigDict],
                  workdirs: Sequence[str | Path], **kwargs: Any) -> list[dict[str, Any]]:
  """Trains trials that differ only in ``VMAPPED`` fields as one vmapped program, never
  testing them; each trial ends where training it alone would, up to float rounding."""
  return engine.train_trials(configs, workdirs, evaluate_test=False, **kwargs)


def check(base: ml_collections.ConfigDict, sweep: dict[str, Any]
          ) -> tuple[dict[str, optuna.distributions.BaseDistribution], list[dict[str, Any]] | None]:
  """Every field of ``sweep`` and every config it can make, before any trial: the search
  space, and a grid's points. A distribution is checked at both ends and each choice."""
  distributions = space.search_space(sweep, base)
  grid = spec.expand(sweep) if sweep["method"] == "grid" else None
  for point in grid or []:
    spec.trial_config(base, point)
  if grid is None:
    for field, dist in distributions.items():
      ends = (dist.choices if isinstance(dist, optuna.distributions.CategoricalDistribution)
              else (dist.low, dist.high))
      for value in ends:
        spec.trial_config(base, {field: value})
  return distributions, grid


def run_sweep(base: ml_collections.ConfigDict, sweep: dict[str, Any], workdir: str | Path, *,
              vmap: bool = True, storage: str | None = None, group_size: int = 16,
              poll_seconds: float = 2.0) -> list[dict[str, Any]]:
  """Works on the sweep's study until every requested trial has ended, then selects.

  This worker asks trials until the study has all it requested (``num_trials``, or a grid's
  points), trains them, then waits for other workers' running trials, taking over any whose
  worker died. With ``vmap`` (one device, Flax models, a grid or a space of ``VMAPPED``
  fields only) it asks up to ``group_size`` trials at once and trains those that differ
  only in ``VMAPPED`` fields as one program; otherwise one trial at a time.

  Returns one row per trial (state, parameters, validation accuracy, best epoch, seconds,
  and test accuracy for the selected trial only) and writes results.csv and plots.
  """
  workdir = Path(workdir)
  distributions, grid = check(base, sweep)
  target = len(grid) if grid is not None else sweep["num_trials"]
  workdir.mkdir(parents=True, exist_ok=True)
  study = space.open_study(str(workdir), sweep, base.train.num_epochs, storage)
  with workers.ask_lock(workdir):
    workers.prepare(study, sweep, grid)
  together = (vmap and jax.device_count() == 1 and base.model.name not in models.CLASSIC
              and (grid is not None or set(sweep["parameters"]) <= set(VMAPPED)))
  while True:
    claims, dead = workers.claim(study, sweep, distributions, target,
                                 group_size if together else 1, workdir)
    for name in dead:
      print(f"jaxdigits: {name}'s worker died; it runs again, resuming its checkpoints",
            file=sys.stderr, flush=True)
    if claims:
      _train(study, base, claims, vmap=together)
    elif workers.running_elsewhere(study):
      time.sleep(poll_seconds)  # other workers' last trials; ours if theirs die
    else:
      break
  with workers.ask_lock(workdir):
    return results.finish(study, list(sweep["parameters"]), workdir)


def _train(study: optuna.Study, base: ml_collections.ConfigDict,
           claims: list[workers.Claim], *, vmap: bool) -> None:
  """Trains the claimed trials (a vmapped program per group), tells the study each end."""
  configs = [spec.trial_config(base, c.trial.params) for c in claims]
  told: set[int] = set()
  try:
    for group in spec.group_trials(configs):
      if vmap and len(group) > 1:
        logging.info("trials %s: vmapped together", [claims[i].dir.name for i in group])
        _train_group(study, [claims[i] for i in group], [configs[i] for i in group], told)
      else:
        for i in group:
          _train_group(study, [claims[i]], [configs[i]], told)
  except BaseException:
    # Interrupted, or a user error (the same for every trial): the trials not yet told run
    # again, resuming, when a worker next asks.
    with workers.ask_lock(claims[0].dir.parent):
      for c in claims:
        if c.trial.number not in told:
          workers.retry(study, c.trial)
    raise
  finally:
    for c in claims:
      c.release()


def _train_group(study: optuna.Study, claims: list[workers.Claim],
                 configs: list[ml_collections.ConfigDict], told: set[int]) -> None:
  for c in claims:  # a retry reports the epochs its folder already holds
    if (c.dir / records.FILE).is_file():
      for r in records.read(c.dir).epochs:
        c.trial.report(r["val_accuracy"], r["epoch"])

  def should_stop(epoch: int, vals: list[float | None]) -> list[bool]:
    for c, val in zip(claims, vals):
      if val is not None:
        c.trial.report(val, epoch)
        c.pruned = c.trial.should_prune()
    return [c.pruned for c in claims]

  start = time.perf_counter()
  try:
    if configs[0].model.name in models.CLASSIC:
      finals = [engine.train_and_evaluate(configs[0], claims[0].dir, evaluate_test=False)]
    else:
      finals = engine.train_trials(configs, [c.dir for c in claims], evaluate_test=False,
                                   should_stop=should_stop)
  except JaxdigitsError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    # A bug or a numerical failure of these trials: they end failed, the sweep goes on.
    for c in claims:
      print(f"jaxdigits: {c.dir.name} failed: {type(e).__name__}: {e}", file=sys.stderr,
            flush=True)
      c.trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:1000])
      study.tell(c.trial, state=TrialState.FAIL)
      told.add(c.trial.number)
    return
  seconds = (time.perf_counter() - start) / len(claims)
  for c, final in zip(claims, finals):
    c.trial.set_user_attr("seconds", seconds)
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
      if c.pruned:
        study.tell(c.trial, state=TrialState.PRUNED)
      else:
        study.tell(c.trial, final["val_accuracy"])
    told.add(c.trial.number)
