"""The default convolutional network: fast on a CPU, > 99.3% on MNIST in a few epochs."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def _pool(x: jax.Array) -> jax.Array:
  # 2x2 max-pool by reshape: XLA:CPU differentiates this faster than reduce_window.
  b, h, w, c = x.shape
  return x[:, :h // 2 * 2, :w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class PatchConv(nn.Module):
  """3x3 SAME convolution as nine shifted slices and one matmul."""
  features: int
  use_bias: bool = False

  @nn.compact
  def __call__(self, x):
    h, w = x.shape[1:3]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = jnp.concatenate([xp[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], -1)
    return nn.Dense(self.features, use_bias=self.use_bias)(cols)


class CNN(nn.Module):
  """conv-BN-ReLU blocks, each followed by a 2x2 max-pool, then a dense head."""

  features: Sequence[int] = (32, 64)
  convs_per_block: int = 1
  dense: int = 256
  dropout: float = 0.0
  num_classes: int = 10
  patch_conv: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    for f in self.features:
      for _ in range(self.convs_per_block):
        x = PatchConv(f)(x) if self.patch_conv else nn.Conv(f, (3, 3), use_bias=False)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = nn.relu(x)
      x = _pool(x)
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(self.dense)(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes)(x)
