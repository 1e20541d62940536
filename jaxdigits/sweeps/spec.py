"""Sweep definitions: a sweep file, a grid's points, each trial's validated config.

A sweep file defines ``get_sweep()`` returning ``{"method": "grid" | "random" | "tpe" |
"cmaes", "parameters": {field: values or distribution}, "num_trials": N, "seed": S,
"pruner": ...}`` (``sweeps.space`` checks it and maps it to Optuna). This module only
parses: ``expand`` gives a grid's points, ``trial_config`` each trial's validated config,
and ``group_trials`` which trials one vmapped program can train together.
"""

from __future__ import annotations

import itertools
import json
import types
from pathlib import Path
from typing import Any

import ml_collections

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


def expand(sweep: dict[str, Any]) -> list[dict[str, Any]]:
  """A grid sweep's points as field → value overrides, in the grid's order (the first
  field varies slowest). The sweep is one ``space.search_space`` has checked."""
  params = sweep["parameters"]
  return [dict(zip(params, combo)) for combo in itertools.product(*params.values())]


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
