"""Geometric distortions of digit batches: random ones for training, fixed ones at test time.

Training draws a shift, rotation and scale per example (``random_shift``, ``random_affine``);
test-time augmentation (``tta_views``) shows a trained model a few fixed distortions of each
digit and averages its answers. Both warp with the same ``affine``, so a model is tested on
the kind of distortion it learnt from.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

# (rotation in degrees, scale, shift down, shift right) of each test-time view: the digit as
# given, moved one pixel to each of its 8 neighbours, and turned -5°/0°/+5° at 0.9, 1 and
# 1.1 times its size. Chosen on validation among smaller sets (benchmarks/tta.py;
# docs/results.md, "Test-time augmentation").
View = tuple[float, float, float, float]
IDENTITY: View = (0.0, 1.0, 0.0, 0.0)
TTA_VIEWS: tuple[View, ...] = (
    IDENTITY,
    *((0.0, 1.0, float(dy), float(dx)) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx),
    *((r, s, 0.0, 0.0) for r in (-5.0, 0.0, 5.0) for s in (0.9, 1.0, 1.1) if (r, s) != (0, 1)),
)


def _per_example(key: jax.Array, draw: Callable[[jax.Array, int], jax.Array], batch: int,
                 axis_name: str | None) -> jax.Array:
  """``draw(key, n)`` for the global batch, this device's rows of it under pmap, so every
  strategy augments every example alike."""
  if axis_name is None:
    return draw(key, batch)
  values = draw(key, batch * jax.lax.axis_size(axis_name))
  return jax.lax.dynamic_slice_in_dim(values, jax.lax.axis_index(axis_name) * batch, batch)


def affine(images: jax.Array, angle: jax.Array, scale: jax.Array,
           shift: jax.Array | None = None) -> jax.Array:
  """Rotates image i by ``angle[i]`` radians and scales it by ``scale[i]`` about its centre,
  then moves it ``shift[i]`` = (down, right) pixels (bilinear, zero fill). Float [B,H,W,C]."""
  b, h, w, _ = images.shape
  yy, xx = jnp.meshgrid(jnp.arange(h) - (h - 1) / 2, jnp.arange(w) - (w - 1) / 2,
                        indexing="ij")
  shift = jnp.zeros((b, 2)) if shift is None else shift

  def warp(image, a, s, t):  # output pixel ← the source point it came from
    cos, sin = jnp.cos(a) / s, jnp.sin(a) / s
    y, x = yy - t[0], xx - t[1]
    src = [cos * y - sin * x + (h - 1) / 2, sin * y + cos * x + (w - 1) / 2]
    channel = lambda im: jax.scipy.ndimage.map_coordinates(im, src, order=1, mode="constant")
    return jax.vmap(channel, in_axes=-1, out_axes=-1)(image)

  return jax.vmap(warp)(images, angle, scale, shift)


def random_shift(key: jax.Array, images: jax.Array, max_shift: int,
                 axis_name: str | None = None) -> jax.Array:
  """Translates each image by up to ``max_shift`` whole pixels (zero fill)."""
  b, h, w, _ = images.shape
  m = max_shift
  offsets = _per_example(key, lambda k, n: jax.random.randint(k, (n, 2), 0, 2 * m + 1), b,
                         axis_name)
  padded = jnp.pad(images, ((0, 0), (m, m), (m, m), (0, 0)))
  # A crop of the padded image: cheaper than ``affine`` for whole-pixel moves.
  crop = lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, im.shape[-1]))
  return jax.vmap(crop)(padded, offsets)


def random_affine(key: jax.Array, images: jax.Array, max_rotation: float, max_scale: float,
                  axis_name: str | None = None) -> jax.Array:
  """Rotates each image by up to ``max_rotation`` degrees and scales it by up to
  ``1 ± max_scale`` about its centre: the classic distortions that took MNIST convnets past
  99.6%."""
  b = images.shape[0]
  uniform = lambda bound: lambda k, n: jax.random.uniform(k, (n,), minval=-bound, maxval=bound)
  rot_key, scale_key = jax.random.split(key)
  angle = jnp.deg2rad(_per_example(rot_key, uniform(max_rotation), b, axis_name))
  scale = 1.0 + _per_example(scale_key, uniform(max_scale), b, axis_name)
  return affine(images, angle, scale)


@functools.partial(jax.jit, static_argnums=1)
def _view(images: jax.Array, view: View) -> jax.Array:
  rotation, scale, down, right = view
  b = images.shape[0]
  moved = affine(images.astype(jnp.float32), jnp.full((b,), np.deg2rad(rotation)),
                 jnp.full((b,), scale), jnp.tile(jnp.array([[down, right]]), (b, 1)))
  return jnp.clip(jnp.round(moved), 0, 255).astype(jnp.uint8)


def tta_views(images: np.ndarray, views: tuple[View, ...] = TTA_VIEWS) -> list[np.ndarray]:
  """Each view (rotation°, scale, down, right) of uint8 images [N,H,W,C], still uint8, so
  any predictor reads them as it reads its usual input."""
  images = np.asarray(images)
  return [images if view == IDENTITY else np.asarray(_view(images, view))
          for view in views]
