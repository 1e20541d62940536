"""Evaluation: batched, jitted inference over a whole split, and its metrics."""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdigits.data.pipeline import normalize

ApplyFn = Callable[..., jax.Array]


def predict_logits(apply_fn: ApplyFn, variables: Any, images: np.ndarray | jax.Array,
                   batch_size: int = 1000) -> np.ndarray:
  """Logits [N, classes] for uint8 images [N,H,W,1], in fixed-size jitted batches.

  The last batch is padded to ``batch_size`` so one compiled program serves every split.
  """
  images = jnp.asarray(images)
  n = images.shape[0]
  batch_size = min(batch_size, n)
  padded = -(-n // batch_size) * batch_size
  if padded != n:
    images = jnp.concatenate([images, jnp.zeros((padded - n, *images.shape[1:]), images.dtype)])
  logits = [_logits(apply_fn, variables, images[i:i + batch_size])
            for i in range(0, padded, batch_size)]
  return np.asarray(jnp.concatenate(logits))[:n]


@functools.partial(jax.jit, static_argnums=0)
def _logits(apply_fn: ApplyFn, variables: Any, images: jax.Array) -> jax.Array:
  return apply_fn(variables, normalize(images), train=False)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
  return float(np.mean(np.argmax(logits, -1) == np.asarray(labels)))
