"""Multinomial logistic regression: one dense layer on the flattened pixels."""

from __future__ import annotations

import flax.linen as nn
import jax


class Linear(nn.Module):
  """One dense layer from the flattened pixels to the logits.

  Attributes:
    num_classes: number of output logits.
  """

  num_classes: int = 10

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    del train  # no dropout or statistics
    return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))
