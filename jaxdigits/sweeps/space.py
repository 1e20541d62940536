"""A sweep file's search space as Optuna distributions, checked before any study starts.

The first piece of issue 21 (sweeps on Optuna): ``search_space`` maps a sweep's
``parameters`` to ``optuna.distributions`` and refuses what a method cannot search
(``cmaes`` needs a numeric space), ``pruner`` names one of ``PRUNERS``. The runner does not
use it yet: grid and random still run through ``spec.expand``.
"""

from __future__ import annotations

from typing import Any

import ml_collections
import optuna

from jaxdigits.errors import SweepError
from jaxdigits.sweeps import spec

METHODS = ("grid", "random", "tpe", "cmaes")
PRUNERS = ("none", "median", "successive_halving", "hyperband")


def _distribution(field: str, value: Any) -> optuna.distributions.BaseDistribution:
  if isinstance(value, (list, tuple)):  # a grid's values
    if not value:
      raise SweepError(f"sweep parameter {field}: a grid needs a non-empty list of values")
    return optuna.distributions.CategoricalDistribution(list(value))
  kind = value.get("distribution") if isinstance(value, dict) else None
  if kind == "choice":
    if not value.get("values"):
      raise SweepError(f"sweep parameter {field}: 'choice' needs a non-empty 'values' list")
    return optuna.distributions.CategoricalDistribution(list(value["values"]))
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
    space[field] = _distribution(field, value)
    if method == "cmaes" and isinstance(
        space[field], optuna.distributions.CategoricalDistribution):
      raise SweepError(f"sweep parameter {field}: cmaes searches numeric spaces only; use "
                       "uniform or log_uniform, or method 'tpe'")
  if method != "grid" and not (isinstance(sweep.get("num_trials"), int)
                               and sweep["num_trials"] > 0):
    raise SweepError(f"{method} search needs num_trials > 0, got {sweep.get('num_trials')!r}")
  return space
