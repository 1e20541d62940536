"""Orbax checkpoints that resume and keep the best on validation.

A checkpoint is the TrainState plus the exact config (JSON) that produced it; a run
compares that config with its own before it touches the folder (``training.workdir``).
Orbax writes each step to a temporary folder and renames it when complete, so a run killed
mid-save leaves the previous checkpoints intact and the next run resumes from the last
whole one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import jax
import ml_collections
import orbax.checkpoint as ocp

from jaxdigits import config as config_lib
from jaxdigits.config import RESUMABLE_CHANGES
from jaxdigits.errors import CheckpointError

State = TypeVar("State")
_METRIC = "val_accuracy"




def config_to_json(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config as plain JSON types (tuples become lists), as it is stored."""
  return json.loads(config.to_json())


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flatten(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: tree}


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
  """Fields that differ between two JSON configs, except those a resume may change."""
  # A field added to jaxdigits after the checkpoint was written counts as its default.
  a = {**_flatten(config_to_json(config_lib.defaults())), **_flatten(saved)}
  b = _flatten(current)
  return [f"{k}: checkpoint has {a.get(k)!r}, config has {b.get(k)!r}"
          for k in sorted(set(a) | set(b))
          if k not in RESUMABLE_CHANGES and a.get(k) != b.get(k)]


class Checkpoints:
  """The checkpoints of one training run, in ``directory``.

  With a ``config`` they can be written (``training.workdir.check`` first makes sure the
  folder holds that config's run); without one they are opened read-only.
  """

  def __init__(self, directory: str | Path, config: ml_collections.ConfigDict | None = None):
    self.directory = Path(directory).absolute()
    if config is None:
      if not self.directory.is_dir():
        raise CheckpointError(f"no checkpoints at {self.directory}: pass a training workdir "
                              f"or its checkpoints/ folder")
      self._config = None
      options = ocp.CheckpointManagerOptions(read_only=True)
    else:
      self._config = config_to_json(config)
      # best_fn makes Orbax write each step's metrics to disk (read back by best_step);
      # which checkpoints survive is decided by the preservation policy alone.
      options = ocp.CheckpointManagerOptions(
          create=True, best_fn=lambda m: m[_METRIC], preservation_policy=(
          ocp.checkpoint_managers.AnyPreservationPolicy([
              ocp.checkpoint_managers.LatestN(n=config.checkpoint.keep),
              ocp.checkpoint_managers.BestN(get_metric_fn=lambda m: m[_METRIC], n=1),
          ])))
    self._manager = ocp.CheckpointManager(self.directory, item_names=("state", "config"),
                                          options=options)

  def saved_config(self, step: int) -> dict[str, Any]:
    return self._manager.restore(
        step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def metrics(self, step: int) -> dict[str, float]:
    """The metrics saved with ``step`` (empty if none)."""
    return dict(self._manager.metrics(step) or {})

  def best_step(self) -> int | None:
    """The step with the highest validation accuracy (the later one on a tie)."""
    steps = self._manager.all_steps()
    if not steps:
      return None
    return max(steps, key=lambda s: (self.metrics(s).get(_METRIC, -1.0), s))

  def save(self, step: int, state: Any, metrics: dict[str, float]) -> None:
    self._manager.save(step, metrics=metrics, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(self._config)))

  def restore(self, step: int, target: State, *, partial: bool = False) -> State:
    """Restores ``step`` into the structure, shapes and shardings of ``target``.

    ``target`` may hold arrays or ``jax.ShapeDtypeStruct``s with shardings; the saved
    device layout does not matter, so a checkpoint restores onto any device count. With
    ``partial``, ``target`` may be a dict of some of the state's fields (inference reads
    only ``params`` and ``batch_stats``); the others are not read.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    args = (ocp.args.PyTreeRestore(abstract, ocp.checkpoint_utils.construct_restore_args(abstract),
                                   partial_restore=True)
            if partial else ocp.args.StandardRestore(abstract))
    return self._manager.restore(step, args=ocp.args.Composite(state=args))["state"]

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are committed."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

