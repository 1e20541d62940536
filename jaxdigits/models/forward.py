"""The inference forward pass of a Flax model and its accuracy, for training and serving alike.

The engine validates with these and the Predictor serves with them, so a model is scored
by the same compiled program during training, evaluation, prediction and the demo.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

ApplyFn = Callable[..., jax.Array]


@functools.partial(jax.jit, static_argnums=0)
def _logits(apply_fn: ApplyFn, variables: Any, images: jax.Array) -> jax.Array:
  # uint8 → [0, 1] inside the jitted program, as in training (pipeline.normalize).
  return apply_fn(variables, images.astype(jnp.float32) * (1.0 / 255.0), train=False)


def batched_logits(apply_fn: ApplyFn, variables: Any, images: np.ndarray | jax.Array,
                   batch_size: int = 1000) -> np.ndarray:
  """Logits [N, classes] for uint8 images [N,H,W,1], in fixed-size jitted batches.

  The last batch is padded to ``batch_size`` so one compiled program serves every split.
  """
  images = jnp.asarray(images)
  n = images.shape[0]
  batch_size = max(1, min(batch_size, n))
  padded = -(-n // batch_size) * batch_size
  if padded != n:
    images = jnp.concatenate([images, jnp.zeros((padded - n, *images.shape[1:]), images.dtype)])
  logits = [_logits(apply_fn, variables, images[i:i + batch_size])
            for i in range(0, padded, batch_size)]
  return np.asarray(jnp.concatenate(logits))[:n]


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
  """The share of rows whose largest logit is at the label."""
  return float(np.mean(np.argmax(logits, -1) == np.asarray(labels)))
