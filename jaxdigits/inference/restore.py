"""Inference variables of a trained Flax model: its module, and params + batch_stats only.

Training checkpoints hold the whole TrainState (optimizer moments, step); inference reads
just the variables ``module.apply`` needs, into shapes taken from the module itself, so no
optimizer or train state is ever built and the saved device layout does not matter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxdigits import checkpoints, config as config_lib, models
from jaxdigits.errors import CheckpointError

CHECKPOINTS = "checkpoints"


def abstract_variables(config: ml_collections.ConfigDict) -> tuple[nn.Module, dict[str, Any]]:
  """The config's module and the shapes of its variables, placed on this process's first
  device; collections the module does not have (batch_stats without BatchNorm) are absent.

  Raises:
    ValueError, AttributeError, KeyError: the config names no model this jaxdigits builds.
  """
  module = models.build(config.model)
  shape = config_lib.image_shape(config.data)
  abstract = jax.eval_shape(
      lambda: module.init(jax.random.key(0), jnp.zeros((1, *shape), jnp.float32), train=False))
  one_device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return module, {name: jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=one_device), tree)
                  for name, tree in abstract.items() if jax.tree.leaves(tree)}


def workdir_of(path: str | Path) -> Path:
  """The training workdir, given it or its ``checkpoints/`` folder."""
  path = Path(path)
  return path.parent if path.name == CHECKPOINTS else path


def read_run(directory: str | Path) -> tuple[ml_collections.ConfigDict, nn.Module,
                                             dict[str, Any]]:
  """The best-on-validation variables of a Flax run, with its config and module.

  ``directory`` is a training workdir or its ``checkpoints/`` folder. The best step is
  checked against its checksums first (``checkpoints.verify_step``); steps saved before
  jaxdigits wrote checksums load unverified.

  Raises:
    CheckpointError: no checkpoints there, none finished, or a best checkpoint that is
      damaged (naming the step and the file) or does not fit the model its config names.
      A damaged best step is refused rather than replaced by the next best: that would
      serve other answers than the run reports, under the run's name.
  """
  path = Path(directory).absolute()
  if (path / CHECKPOINTS).is_dir():
    path = path / CHECKPOINTS
  ckpts = checkpoints.Checkpoints(path)
  try:
    step = ckpts.best_step()
    if step is None:
      raise CheckpointError(f"{path} holds no finished checkpoint: train the run until its "
                            f"first epoch ends, or pass another run")
    try:
      ckpts.verify(step)
      config = ml_collections.ConfigDict(ckpts.saved_config(step))
      try:
        module, abstract = abstract_variables(config)
      except (ValueError, AttributeError, KeyError, TypeError) as e:
        raise checkpoints.DamagedCheckpointError(
            step, ckpts.step_dir(step), f"checkpoint step {step}: its config names no model "
            f"jaxdigits builds ({e})", ckpts.step_dir(step) / checkpoints.CONFIG_FILE) from None
      variables = ckpts.restore(step, abstract, partial=True)
    except checkpoints.DamagedCheckpointError as e:
      raise CheckpointError(_refusal(e, path)) from None
  finally:
    ckpts.close()
  return config, module, dict(variables)


def _refusal(error: checkpoints.DamagedCheckpointError, path: Path) -> str:
  """The one line that refuses a damaged best step: what is wrong, and the fixes."""
  workdir = workdir_of(path)
  hint = ""
  if error.file is None or error.file.name == checkpoints.CONFIG_FILE.name:
    # The likeliest edit: the saved config, which then no longer fits the arrays.
    diffs = _config_edits(error.path / checkpoints.CONFIG_FILE, workdir / "config.json")
    if diffs:
      hint = (f"; {error.path / checkpoints.CONFIG_FILE} differs from the run's "
              f"{workdir / 'config.json'} ({'; '.join(diffs[:3])}): put the trained config "
              f"back there")
  return (f"{error.reason}{hint}; it is the best checkpoint on validation of {workdir}, "
          f"which is served as the run: restore the run folder from a copy, move "
          f"{error.path} out of {path} to serve the next best step, or retrain")


def _config_edits(saved: Path, run_config: Path) -> list[str]:
  try:
    return checkpoints.config_differences(json.loads(saved.read_text(encoding="utf-8")),
                                          json.loads(run_config.read_text(encoding="utf-8")))
  except (OSError, ValueError, TypeError, AttributeError):
    return []
