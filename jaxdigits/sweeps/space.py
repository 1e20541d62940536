"""A sweep file's search space as Optuna distributions, checked before any study starts.

``search_space`` maps a sweep's ``parameters`` to ``optuna.distributions`` and refuses what
a method cannot search (``cmaes`` needs a numeric space, a grid lists its values),
``pruner`` names one of ``PRUNERS``; ``sampler`` and ``open_study`` give the study the
runner asks trials of (``sweeps.workers``). Grid points are enqueued as fixed trials.
"""

from __future__ import annotations

import warnings
from typing import Any

import ml_collections
import numpy as np
import optuna

from jaxdigits.errors import SweepError
from jaxdigits.sweeps import spec

METHODS = ("grid", "random", "tpe", "cmaes")
PRUNERS = ("none", "median", "successive_halving", "hyperband")


def _choices(field: str, values: list[Any]) -> optuna.distributions.CategoricalDistribution:
  # The study's storage keeps JSON scalars: a tuple (model.features) would come back a list.
  for v in values:
    if not (v is None or isinstance(v, (bool, int, float, str))):
      raise SweepError(f"sweep parameter {field}: values must be numbers, strings, booleans "
                       f"or None, got {v!r}; sweep such fields with one config file each")
  return optuna.distributions.CategoricalDistribution(list(values))


def _distribution(field: str, value: Any) -> optuna.distributions.BaseDistribution:
  if isinstance(value, (list, tuple)):  # a grid's values
    if not value:
      raise SweepError(f"sweep parameter {field}: a grid needs a non-empty list of values")
    return _choices(field, list(value))
  kind = value.get("distribution") if isinstance(value, dict) else None
  if kind == "choice":
    if not value.get("values"):
      raise SweepError(f"sweep parameter {field}: 'choice' needs a non-empty 'values' list")
    return _choices(field, list(value["values"]))
  if kind not in ("uniform", "log_uniform"):
    raise SweepError(f"sweep parameter {field}: needs a list (grid) or a dict with "
                     f"'distribution' in {list(spec.DISTRIBUTIONS)}, got {value!r}")
  low, high = value.get("min"), value.get("max")
  if not (isinstance(low, (int, float)) and isinstance(high, (int, float)) and low < high):
    raise SweepError(f"sweep parameter {field}: {kind} needs numbers min < max, got "
                     f"min={low!r} max={high!r}")
  if kind == "log_uniform" and low <= 0:
    raise SweepError(f"sweep parameter {field}: log_uniform needs min > 0, got {low!r}")
  return optuna.distributions.FloatDistribution(low, high, log=kind == "log_uniform")


def search_space(sweep: dict[str, Any], base: ml_collections.ConfigDict
                 ) -> dict[str, optuna.distributions.BaseDistribution]:
  """field → distribution for ``sweep``; a SweepError naming the field for anything bad."""
  method, params = sweep.get("method"), sweep.get("parameters")
  if method not in METHODS:
    raise SweepError(f"sweep method must be one of {list(METHODS)}, got {method!r}")
  if sweep.get("pruner", "none") not in PRUNERS:
    raise SweepError(f"sweep pruner must be one of {list(PRUNERS)}, got "
                     f"{sweep.get('pruner')!r}")
  if not params:
    raise SweepError("sweep has no parameters")
  space = {}
  for field, value in params.items():
    spec._get(base, field)  # pylint: disable=protected-access
    if method == "grid" and not (isinstance(value, (list, tuple)) and value):
      raise SweepError(f"sweep parameter {field}: a grid needs a non-empty list of values, "
                       f"got {value!r}")
    space[field] = _distribution(field, value)
    if method == "cmaes" and isinstance(
        space[field], optuna.distributions.CategoricalDistribution):
      raise SweepError(f"sweep parameter {field}: cmaes searches numeric spaces only; use "
                       "uniform or log_uniform, or method 'tpe'")
  if method != "grid" and not (isinstance(sweep.get("num_trials"), int)
                               and sweep["num_trials"] > 0):
    raise SweepError(f"{method} search needs num_trials > 0, got {sweep.get('num_trials')!r}")
  if not isinstance(sweep.get("seed", 0), int):
    raise SweepError(f"sweep seed must be an integer, got {sweep.get('seed')!r}")
  return space


def trial_seed(seed: int, number: int) -> int:
  """The sampler's seed for the study's ``number``-th ask: a run's trials depend only on the
  sweep's seed and their order, and workers that ask in turn never draw the same values."""
  return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def sampler(method: str, seed: int, num_trials: int = 100) -> optuna.samplers.BaseSampler:
  """The sampler of ``method``; grid points are enqueued as fixed trials, so random serves.

  TPE starts from a third of the trials at random (3 to 10, Optuna's default 10 would leave
  a short study all random), models the parameters jointly, and with several workers
  counts running trials as bad ones (constant liar) so they do not all ask the same point.
  """
  with warnings.catch_warnings():  # multivariate and constant_liar are "experimental"
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    if method == "tpe":
      return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True,
                                        n_startup_trials=min(10, max(3, num_trials // 3)))
    if method == "cmaes":
      return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=1)
  return optuna.samplers.RandomSampler(seed=seed)


def pruner(name: str, num_epochs: int) -> optuna.pruners.BasePruner:
  """The pruner named in a sweep; epochs are its steps."""
  if name == "median":
    return optuna.pruners.MedianPruner(n_startup_trials=2)
  if name == "successive_halving":
    return optuna.pruners.SuccessiveHalvingPruner()
  if name == "hyperband":
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=num_epochs)
  return optuna.pruners.NopPruner()


def open_study(workdir: str, sweep: dict[str, Any], num_epochs: int,
               storage: str | None = None) -> optuna.Study:
  """The sweep's study: Optuna's journal file in ``workdir`` (several processes may share
  it; a rerun resumes), or ``storage``, a database URL for many machines."""
  if storage is None:
    backend = optuna.storages.journal.JournalFileBackend(f"{workdir}/study.journal")
    storage = optuna.storages.JournalStorage(backend)
  optuna.logging.set_verbosity(optuna.logging.WARNING)  # the runner says what happens
  return optuna.create_study(
      study_name="jaxdigits", storage=storage, load_if_exists=True, direction="maximize",
      sampler=sampler(sweep["method"], sweep.get("seed", 0), sweep.get("num_trials") or 100),
      pruner=pruner(sweep.get("pruner", "none"), num_epochs))
