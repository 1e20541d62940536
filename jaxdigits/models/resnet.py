"""A small ResNet for 28x28 digits: stages of basic residual blocks."""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdigits.models.cnn import check_space_to_depth, space_to_depth


class ResNet(nn.Module):
  """A conv stem, then per stage ``blocks_per_stage`` basic blocks (two 3x3 conv-BN, identity
  or 1x1-projection shortcut); every stage after the first halves the resolution.

  Attributes:
    stage_features: channels of each stage, one entry per stage (and of the stem: the first).
    blocks_per_stage: basic residual blocks in each stage.
    space_to_depth: as in the CNN; 2 runs the first stage at 14x14, about 3x cheaper.
    num_classes: number of output logits.
  """

  stage_features: Sequence[int] = (16, 32, 64)
  blocks_per_stage: int = 1
  space_to_depth: int = 1
  num_classes: int = 10
  bn_axis_name: str | None = None  # set by the pmap strategy: statistics over all devices
  conv: Callable | None = None  # as in the CNN

  def __post_init__(self):
    check_space_to_depth(self.space_to_depth)
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = space_to_depth(x, self.space_to_depth)
    norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9,
                                axis_name=self.bn_axis_name if train else None)
    conv = functools.partial(nn.Conv, use_bias=False, conv_general_dilated=self.conv)
    x = nn.relu(norm()(conv(self.stage_features[0], (3, 3))(x)))
    for stage, features in enumerate(self.stage_features):
      for block in range(self.blocks_per_stage):
        strides = (2, 2) if stage > 0 and block == 0 else (1, 1)
        y = nn.relu(norm()(conv(features, (3, 3), strides)(x)))
        y = norm()(conv(features, (3, 3))(y))
        if x.shape[-1] != features or strides != (1, 1):
          x = norm()(conv(features, (1, 1), strides)(x))
        x = nn.relu(x + y)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes)(x)
