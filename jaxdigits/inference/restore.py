"""Inference variables of a trained Flax model: its module, and params + batch_stats only.

Training checkpoints hold the whole TrainState (optimizer moments, step); inference reads
just the variables ``module.apply`` needs, into shapes taken from the module itself, so no
optimizer or train state is ever built and the saved device layout does not matter.
"""

from __future__ import annotations

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

  ``directory`` is a training workdir or its ``checkpoints/`` folder.

  Raises:
    CheckpointError: no checkpoints there, none finished, or a checkpoint that does not fit
      the model its config names.
  """
  path = Path(directory)
  if (path / CHECKPOINTS).is_dir():
    path = path / CHECKPOINTS
  ckpts = checkpoints.Checkpoints(path)
  try:
    step = ckpts.best_step()
    if step is None:
      raise CheckpointError(f"{path} holds no finished checkpoint: train the run until its "
                            f"first epoch ends, or pass another run")
    config = ml_collections.ConfigDict(ckpts.saved_config(step))
    module, abstract = abstract_variables(config)
    variables = ckpts.restore(step, abstract, partial=True)
  finally:
    ckpts.close()
  return config, module, dict(variables)
