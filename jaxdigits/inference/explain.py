"""Why a model read a digit as it did: a heat map over its 28x28 input.

Two gradient methods, each one jitted program over the whole batch:

* ``"smoothgrad"`` (Smilkov et al. 2017): the gradient of the target logit, averaged over
  noisy copies of the input, in absolute value. It can light up paper as well as ink (where
  a stroke would change the answer), so it shows what the model looked at.
* ``"integrated_gradients"`` (Sundararajan et al. 2017): input times the gradient averaged
  along the straight path from a black image; signed, and it sums to the target logit's
  change from black, so it says how much each stroke pixel pushed towards the answer. Off
  the ink it is zero by construction.

``apply_fn(variables, x, train=False)`` must be a Flax apply taking float images in [0, 1],
as ``Predictor.model.apply`` does.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

ApplyFn = Callable[..., jax.Array]
METHODS = ("smoothgrad", "integrated_gradients")


def _target_logits(apply_fn: ApplyFn, variables: Any, x: jax.Array, target: jax.Array
                   ) -> jax.Array:
  """Sum over the batch of each image's target logit: its gradient is per-image."""
  logits = apply_fn(variables, x, train=False)
  return jnp.take_along_axis(logits, target[:, None], axis=1).sum()


@functools.partial(jax.jit, static_argnames=("apply_fn", "method", "samples"))
def _saliency(apply_fn: ApplyFn, variables: Any, images: jax.Array, target: jax.Array,
              key: jax.Array, noise: float, method: str, samples: int) -> jax.Array:
  x = images.astype(jnp.float32) * (1.0 / 255.0)  # as the Predictor feeds the model
  target = jnp.where(target < 0, jnp.argmax(apply_fn(variables, x, train=False), -1), target)
  grad = jax.grad(lambda v: _target_logits(apply_fn, variables, v, target))
  if method == "smoothgrad":
    noisy = x + noise * jax.random.normal(key, (samples, *x.shape))
    return jnp.abs(jax.vmap(grad)(noisy).mean(0)).sum(-1)
  # Midpoints of ``samples`` equal steps from the black baseline to the image.
  alphas = (jnp.arange(samples, dtype=jnp.float32) + 0.5) / samples
  path = alphas[:, None, None, None, None] * x
  return (x * jax.vmap(grad)(path).mean(0)).sum(-1)


def saliency(apply_fn: ApplyFn, variables: Any, images: np.ndarray,
             target: int | np.ndarray | None = None, *, method: str = "smoothgrad",
             samples: int = 64, noise: float = 0.1, key: jax.Array | None = None
             ) -> np.ndarray:
  """Heat maps float32 [N, 28, 28] for uint8 images [N, 28, 28, 1] (the model's inputs).

  Args:
    apply_fn: the model's apply, ``apply_fn(variables, x, train=False) -> logits``.
    variables: its variables (params, batch_stats).
    images: uint8 [N, H, W, C], bright ink on black, as the model reads them.
    target: the class each map explains (one for all, or one per image); None: the class
      the model predicts for each image.
    method: "smoothgrad" (default) or "integrated_gradients", see the module docstring.
    samples: noisy copies (SmoothGrad) or path steps (integrated gradients).
    noise: SmoothGrad's noise standard deviation, as a share of the [0, 1] pixel range.
    key: SmoothGrad's noise; None: a fixed key, so one image always gets one map.

  Raises:
    ValueError: unknown method, images not [N, H, W, C] or a target outside the classes.
  """
  if method not in METHODS:
    raise ValueError(f"saliency method must be one of {METHODS}, got {method!r}")
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"expected images [N, H, W, C], got shape {images.shape}")
  n = images.shape[0]
  if target is not None and not np.all((np.asarray(target) >= 0) & (np.asarray(target) < 10)):
    raise ValueError(f"targets must be classes 0..9, got {target!r}")
  # -1: explain the predicted class, chosen inside the jitted program.
  target = np.broadcast_to(np.asarray(-1 if target is None else target, np.int32), (n,))
  key = jax.random.key(0) if key is None else key
  return np.asarray(_saliency(apply_fn, variables, jnp.asarray(images), jnp.asarray(target),
                              key, float(noise), method, int(samples)))


def overlay(images: np.ndarray, maps: np.ndarray) -> np.ndarray:
  """uint8 RGB [N, H, W, 3]: each input in grey under its map, red where the map pushes
  towards the target, blue where against, scaled per image by its largest magnitude."""
  grey = np.asarray(images, np.float32).reshape(maps.shape) / 255.0
  scale = np.abs(maps).max(axis=(1, 2), keepdims=True)
  m = maps / np.where(scale > 0, scale, 1.0)
  pos, neg = np.clip(m, 0, 1), np.clip(-m, 0, 1)
  base = 0.35 * grey
  rgb = np.stack([base + 0.65 * pos, base, base + 0.65 * neg], -1)
  return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
