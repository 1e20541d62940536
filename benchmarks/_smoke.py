"""What ``--smoke`` shrinks in every benchmark: the same code path on tiny data and a tiny CNN.

A smoke run proves that a benchmark still runs against the current library (tests/
test_benchmarks.py runs each one in CI); its figures mean nothing.
"""

from __future__ import annotations

from typing import Any

import ml_collections

TRAIN_LIMIT = 1024  # training examples: 8 batches of 128


def fields(**changes: Any) -> dict[str, Any]:
  """"section.field" → value: tiny data, one epoch, a narrow CNN (every shipped CNN config
  sets these fields), no progress bar, then ``changes`` ("section__field"=value)."""
  return {"data.train_limit": TRAIN_LIMIT, "train.num_epochs": 1, "model.features": (8, 16),
          "model.dense": 32, "progress_bar": False,
          **{k.replace("__", "."): v for k, v in changes.items()}}


def shrink(config: ml_collections.ConfigDict, **changes: Any) -> ml_collections.ConfigDict:
  """``config`` changed in place by ``fields(**changes)``."""
  for field, value in fields(**changes).items():
    *section, name = field.split(".")
    (config[section[0]] if section else config)[name] = value
  return config


def flags(**changes: Any) -> list[str]:
  """``fields(**changes)`` as ``--config.*`` flags of ``python -m jaxdigits.main``."""
  return [f"--config.{k}={v}" for k, v in fields(**changes).items()]
