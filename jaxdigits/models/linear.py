"""Multinomial logistic regression: one dense layer on the flattened pixels."""

from __future__ import annotations

import flax.linen as nn
import jax


class Linear(nn.Module):
  num_classes: int = 10

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    del train  # no dropout or statistics
    return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))
