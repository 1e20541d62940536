"""Sweep definitions: a sweep file's trials as config overrides, checked before any runs.

A sweep file defines ``get_sweep()`` returning ``{"method": "grid" | "random", "parameters":
{field: values or distribution}, "num_trials": N, "seed": S}``. This module only parses:
``expand`` gives the trials, ``trial_config`` each trial's validated config, and
``group_trials`` which trials one vmapped program can train together. Running them is
``sweeps.runner``'s (and, for a search that asks for trials one by one, a study's).
"""

from __future__ import annotations

import itertools
import json
import types
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from jaxdigits import checkpoints, config as config_lib
from jaxdigits.errors import SweepError
from jaxdigits.training.programs import VMAPPED

DISTRIBUTIONS = ("uniform", "log_uniform", "choice")


def load_sweep(path: str | Path) -> dict[str, Any]:
  """``get_sweep()`` of a sweep file."""
  try:
    module = types.ModuleType("sweep_definition")
    code = compile(Path(path).read_text(), str(path), "exec")
    exec(code, module.__dict__)  # pylint: disable=exec-used
  except OSError as e:
    raise SweepError(f"sweep file {path} cannot be read: {e}") from e
  except SyntaxError as e:
    raise SweepError(f"sweep file {path}: {e.msg} at line {e.lineno}; fix the file") from e
  if not callable(getattr(module, "get_sweep", None)):
    raise SweepError(f"sweep file {path} defines no get_sweep(); see configs/sweeps/*.py")
  sweep = module.get_sweep()
  if not isinstance(sweep, dict):
    raise SweepError(f"sweep file {path}: get_sweep() must return a dict, got "
                     f"{type(sweep).__name__}")
  return sweep


def _get(config: ml_collections.ConfigDict, field: str) -> Any:
  node = config
  for part in field.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      raise SweepError(f"sweep parameter {field}: no such config field")
    node = node[part]
  return node


def _sample(field: str, spec: Any, rng: np.random.Generator) -> Any:
  if not isinstance(spec, dict) or spec.get("distribution") not in DISTRIBUTIONS:
    raise SweepError(f"sweep parameter {field}: random search needs a dict with "
                     f"'distribution' in {list(DISTRIBUTIONS)}, got {spec!r}")
  kind = spec["distribution"]
  if kind == "choice":
    values = spec.get("values") or []
    if not values:
      raise SweepError(f"sweep parameter {field}: 'choice' needs a non-empty 'values' list")
    return values[rng.integers(len(values))]
  low, high = spec.get("min"), spec.get("max")
  if not (isinstance(low, (int, float)) and isinstance(high, (int, float)) and low < high):
    raise SweepError(f"sweep parameter {field}: {kind} needs numbers min < max, got "
                     f"min={low!r} max={high!r}")
  if kind == "log_uniform":
    if low <= 0:
      raise SweepError(f"sweep parameter {field}: log_uniform needs min > 0, got {low!r}")
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))
  return float(rng.uniform(low, high))


def expand(sweep: dict[str, Any], base: ml_collections.ConfigDict) -> list[dict[str, Any]]:
  """The trials of ``sweep`` as field → value overrides; refuses a bad sweep up front."""
  method, params = sweep.get("method"), sweep.get("parameters")
  if method not in ("grid", "random"):
    raise SweepError(f"sweep method must be 'grid' or 'random', got {method!r}")
  if not params:
    raise SweepError("sweep has no parameters")
  for field in params:
    _get(base, field)
  if method == "grid":
    for field, values in params.items():
      if not isinstance(values, (list, tuple)) or not values:
        raise SweepError(f"sweep parameter {field}: a grid needs a non-empty list of values")
    fields = list(params)
    return [dict(zip(fields, combo)) for combo in itertools.product(*params.values())]
  num = sweep.get("num_trials")
  if not isinstance(num, int) or num <= 0:
    raise SweepError(f"random search needs num_trials > 0, got {num!r}")
  rng = np.random.default_rng(sweep.get("seed", 0))
  trials = [{f: _sample(f, spec, rng) for f, spec in params.items()} for _ in range(num)]
  return trials


def trial_config(base: ml_collections.ConfigDict,
                 overrides: dict[str, Any]) -> ml_collections.ConfigDict:
  """``base`` with a trial's overrides, validated (a bad value is the trial's SweepError)."""
  config = ml_collections.ConfigDict(base.to_dict())
  for field, value in overrides.items():
    *path, name = field.split(".")
    node = config
    for part in path:
      node = node[part]
    node[name] = type(node[name])(value) if isinstance(node[name], float) else value
  try:
    return config_lib.validate(config)
  except config_lib.ConfigError as e:
    raise SweepError(f"trial {overrides}: {e}") from e


def group_trials(configs: list[ml_collections.ConfigDict]) -> list[list[int]]:
  """Indices of trials whose configs differ only in ``VMAPPED`` fields."""
  groups: dict[str, list[int]] = {}
  for i, config in enumerate(configs):
    flat = checkpoints.config_to_json(config)
    for field in VMAPPED:
      *path, name = field.split(".")
      node = flat
      for part in path:
        node = node[part]
      node.pop(name)
    groups.setdefault(json.dumps(flat, sort_keys=True), []).append(i)
  return list(groups.values())
