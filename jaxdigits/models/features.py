"""Features as jitted JAX functions: flattened pixels, Sobel edge maps, HOG.

Each takes uint8 images [N, H, W, 1] (bright ink on black) and returns float32 [N, F].
``sobel`` matches ``skimage.filters.sobel`` and ``hog`` matches ``skimage.feature.hog``
(L2-Hys blocks) on the same image; the tests check both. ``FeatureCache`` keeps each
dataset's features so that several models compared on the same splits compute them once.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

NAMES = ("pixels", "sobel", "hog")
# HOG on 28x28 digits: 4x4-pixel cells, 2x2-cell blocks, 9 unsigned orientations
# (6x6 blocks x 36 = 1,296 values); 7x7 cells lose the stroke detail SVMs need.
HOG_DEFAULTS = {"orientations": 9, "cell": 4, "block": 2}


@jax.jit
def pixels(images: jax.Array) -> jax.Array:
  """Grey values in [0, 1], flattened."""
  return images.reshape(images.shape[0], -1).astype(jnp.float32) / 255.0


def _sobel_maps(x: jax.Array) -> jax.Array:
  # scipy's 'reflect' border is numpy's 'symmetric'; the smoothing weights are [1, 2, 1] / 4.
  p = jnp.pad(x, ((0, 0), (1, 1), (1, 1)), mode="symmetric")
  smooth_rows = (p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]) / 4
  smooth_cols = (p[:, :, :-2] + 2 * p[:, :, 1:-1] + p[:, :, 2:]) / 4
  g_rows = smooth_cols[:, :-2] - smooth_cols[:, 2:]
  g_cols = smooth_rows[:, :, :-2] - smooth_rows[:, :, 2:]
  return jnp.sqrt((g_rows**2 + g_cols**2) / 2)


@jax.jit
def sobel(images: jax.Array) -> jax.Array:
  """Sobel edge magnitude of each image in [0, 1] (``skimage.filters.sobel``), flattened."""
  x = images[..., 0].astype(jnp.float32) / 255.0
  return _sobel_maps(x).reshape(x.shape[0], -1)


@functools.partial(jax.jit, static_argnames=("orientations", "cell", "block"))
def hog(images: jax.Array, orientations: int = 9, cell: int = 4, block: int = 2) -> jax.Array:
  """Histograms of oriented gradients, as ``skimage.feature.hog(image, orientations,
  (cell, cell), (block, block), block_norm='L2-Hys')`` computes them on the uint8 image."""
  x = images[..., 0].astype(jnp.float32)
  n, h, w = x.shape
  g_row = jnp.zeros_like(x).at[:, 1:-1].set(x[:, 2:] - x[:, :-2])
  g_col = jnp.zeros_like(x).at[:, :, 1:-1].set(x[:, :, 2:] - x[:, :, :-2])
  magnitude = jnp.hypot(g_row, g_col)
  angle = jnp.rad2deg(jnp.arctan2(g_row, g_col)) % 180
  # skimage works in float64, where a horizontal gradient pointing left gives exactly 180
  # → 0; float32 can land just below 180, which would fall in the last bin.
  angle = jnp.where(angle > 180 - 1e-3, 0.0, angle)
  bins = jnp.clip(jnp.floor(angle / (180 / orientations)).astype(jnp.int32), 0, orientations - 1)
  votes = jax.nn.one_hot(bins, orientations) * magnitude[..., None]
  ch, cw = h // cell, w // cell
  cells = votes[:, :ch * cell, :cw * cell].reshape(n, ch, cell, cw, cell, orientations)
  cells = cells.sum(axis=(2, 4)) / (cell * cell)
  bh, bw = ch - block + 1, cw - block + 1
  blocks = jnp.stack([jnp.stack([cells[:, r:r + block, c:c + block] for c in range(bw)], 1)
                      for r in range(bh)], 1)  # [n, bh, bw, block, block, orientations]
  blocks = blocks.reshape(n, bh, bw, -1)
  eps = 1e-5
  out = blocks / jnp.sqrt(jnp.sum(blocks**2, -1, keepdims=True) + eps**2)
  out = jnp.minimum(out, 0.2)
  out = out / jnp.sqrt(jnp.sum(out**2, -1, keepdims=True) + eps**2)
  return out.reshape(n, -1)


def extractor(name: str, **params: int) -> Callable[[jax.Array], jax.Array]:
  """The feature function called ``name`` (one of NAMES), with its parameters bound."""
  if name not in NAMES:
    raise ValueError(f"config field model.features: unknown feature {name!r}; "
                     f"choose one of {list(NAMES)}")
  if name == "hog":
    return functools.partial(hog, **{**HOG_DEFAULTS, **params})
  return {"pixels": pixels, "sobel": sobel}[name]


def compute(name: str, images: np.ndarray, batch_size: int = 2000, **params: int) -> np.ndarray:
  """Features of uint8 images [N, H, W, 1] as float32 [N, F], in fixed-size jitted batches."""
  fn = extractor(name, **params)
  out = []
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    pad = batch_size - len(chunk) if len(images) > batch_size else 0
    # Padding the last chunk keeps one compiled shape per image size.
    padded = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
    out.append(np.asarray(fn(jnp.asarray(padded)))[:len(chunk)])
  return np.concatenate(out)


class FeatureCache:
  """Features per (dataset, split, feature), computed once; on disk when given a folder.

  Keys name the data, not its content: use one cache per set of splits (e.g. one per
  ``data`` config), as ``jaxdigits.compare`` does.
  """

  def __init__(self, directory: str | Path | None = None):
    self._memory: dict[str, np.ndarray] = {}
    self._dir = Path(directory) if directory is not None else None

  def get(self, key: str, name: str, images: np.ndarray, **params: int) -> np.ndarray:
    full = "_".join([key, name, *(f"{k}{v}" for k, v in sorted(params.items()))])
    if full in self._memory:
      return self._memory[full]
    path = self._dir / f"{full}.npy" if self._dir is not None else None
    if path is not None and path.is_file():
      feats = np.load(path)
    else:
      feats = compute(name, images, **params)
      if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, feats)
    self._memory[full] = feats
    return feats
