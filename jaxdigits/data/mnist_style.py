"""MNIST-style size normalisation: fit the ink into 20x20, centre it by mass in 28x28.

MNIST digits were size-normalised to fit a 20x20 box (keeping the aspect ratio) and then
centred by centre of mass in a 28x28 field. Doing the same to any other digit (USPS,
a user's drawing, a photo) is what lets one model read all of them.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

MNIST_SIZE = 28
_BOX = 20
_INK_THRESHOLD = 0.05  # fraction of the brightest pixel that counts as ink when cropping


def mnist_style(ink: np.ndarray) -> np.ndarray:
  """Returns a uint8 28x28 MNIST-style image from a 2-D image with bright ink on black.

  Raises:
    ValueError: the image holds no ink.
  """
  ink = np.asarray(ink, np.float32)
  if ink.ndim == 3 and ink.shape[-1] == 1:
    ink = ink[..., 0]
  if ink.ndim != 2:
    raise ValueError(f"expected a 2-D image, got shape {ink.shape}")
  peak = float(ink.max())
  if peak <= 0:
    raise ValueError("the image is blank: no ink to recognise")
  rows, cols = np.nonzero(ink > _INK_THRESHOLD * peak)
  crop = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
  h, w = crop.shape
  scale = _BOX / max(h, w)
  new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
  resized = np.asarray(Image.fromarray(crop * (255.0 / peak)).resize(
      (new_w, new_h), Image.Resampling.LANCZOS)).clip(0, 255)
  # Centre of mass of the resized digit goes to the canvas centre, clipped so it stays whole.
  total = resized.sum()
  cy = (resized.sum(1) @ np.arange(new_h)) / total if total > 0 else (new_h - 1) / 2
  cx = (resized.sum(0) @ np.arange(new_w)) / total if total > 0 else (new_w - 1) / 2
  top = int(np.clip(round(MNIST_SIZE / 2 - 0.5 - cy), 0, MNIST_SIZE - new_h))
  left = int(np.clip(round(MNIST_SIZE / 2 - 0.5 - cx), 0, MNIST_SIZE - new_w))
  canvas = np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32)
  canvas[top:top + new_h, left:left + new_w] = resized
  return np.round(canvas).astype(np.uint8)


def mnist_style_batch(images: np.ndarray) -> np.ndarray:
  """``mnist_style`` over uint8 images [N,H,W(,1)] → uint8 [N,28,28,1]."""
  return np.stack([mnist_style(im) for im in images])[..., None]
