"""Multilayer perceptron on the flattened pixels: dense-ReLU-dropout layers, then a dense head."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax


class MLP(nn.Module):
  """Dense-ReLU-dropout layers on the flattened pixels, then a dense layer to the logits.

  Attributes:
    hidden: units of each hidden layer, one entry per layer.
    dropout: dropout rate after each hidden layer (training only).
    num_classes: number of output logits.
  """

  hidden: Sequence[int] = (512, 512)
  dropout: float = 0.0
  num_classes: int = 10

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = x.reshape(x.shape[0], -1)
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes)(x)
