"""The default convolutional network: fast on a CPU, > 99.3% on MNIST in a few epochs."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax


def _pool(x: jax.Array) -> jax.Array:
  # 2x2 max-pool by reshape: XLA:CPU differentiates this faster than reduce_window.
  b, h, w, c = x.shape
  return x[:, :h // 2 * 2, :w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class CNN(nn.Module):
  """conv-BN-ReLU blocks, each followed by a 2x2 max-pool, then a dense head."""

  features: Sequence[int] = (32, 64)
  convs_per_block: int = 1
  dense: int = 256
  dropout: float = 0.0
  num_classes: int = 10
  bn_axis_name: str | None = None  # set by the pmap strategy: statistics over all devices

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    for f in self.features:
      for _ in range(self.convs_per_block):
        x = nn.Conv(f, (3, 3), use_bias=False)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                         axis_name=self.bn_axis_name if train else None)(x)
        x = nn.relu(x)
      x = _pool(x)
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(self.dense)(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes)(x)
