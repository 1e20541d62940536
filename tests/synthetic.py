"""Generated digit-like images, for tests that must not depend on the real datasets.

Every image is drawn from a formula, so a test knows exactly where its ink is: a stroke's
angle, a dot's position, a bar's extent.
"""

from __future__ import annotations

import numpy as np

SIZE = 28


def strokes(n: int, seed: int = 0, size: int = SIZE, jitter: float = 2.0, label: int | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images [n, size, size, 1] and int32 labels [n]: label c is an anti-aliased bar
  through the centre at c * 18 degrees counterclockwise, moved up to ``jitter`` pixels
  and 2 to 3 pixels wide, so a small model can learn the labels and every image has its
  mass near the centre. ``label`` draws that one class only."""
  rng = np.random.default_rng(seed)
  labels = (np.arange(n) % 10).astype(np.int32) if label is None else np.full(n, label, np.int32)
  rng.shuffle(labels)
  ys, xs = np.mgrid[:size, :size] - (size - 1) / 2
  angle = np.deg2rad(labels * 18.0)[:, None, None]
  dy, dx = rng.uniform(-jitter, jitter, (2, n, 1, 1))
  up, x = dy - ys, xs - dx  # counterclockwise as displayed: rows grow downwards
  across = np.abs(np.cos(angle) * up - np.sin(angle) * x)  # distance from the bar's axis
  along = np.abs(np.cos(angle) * x + np.sin(angle) * up)
  half_width = rng.uniform(1.0, 1.5, (n, 1, 1))
  ink = np.clip(half_width + 0.5 - across, 0, 1) * np.clip(8.5 - along, 0, 1)
  return np.round(ink * 255).astype(np.uint8)[..., None], labels


def dots(n: int, row: int, col: int, size: int = SIZE, value: int = 255) -> np.ndarray:
  """n uint8 images [n, size, size, 1], each black but for one pixel at (row, col)."""
  images = np.zeros((n, size, size, 1), np.uint8)
  images[:, row, col] = value
  return images


def centre_of_mass(images: np.ndarray) -> np.ndarray:
  """(row, column) centre of mass [N, 2] of images [N, H, W(, 1)]."""
  x = np.asarray(images, np.float64).reshape(len(images), *np.shape(images)[1:3])
  rows, cols = np.mgrid[:x.shape[1], :x.shape[2]]
  total = x.sum((1, 2))
  return np.stack([(x * rows).sum((1, 2)) / total, (x * cols).sum((1, 2)) / total], 1)


def orientation(images: np.ndarray) -> np.ndarray:
  """The principal axis of each image's ink, in degrees in (-90, 90], counterclockwise
  from the column axis as the image is displayed (rows grow downwards)."""
  x = np.asarray(images, np.float64).reshape(len(images), *np.shape(images)[1:3])
  rows, cols = np.mgrid[:x.shape[1], :x.shape[2]]
  com = centre_of_mass(x)
  dy = rows[None] - com[:, :1, None]
  dx = cols[None] - com[:, 1:, None]
  total = x.sum((1, 2))
  mu20, mu02 = (x * dx**2).sum((1, 2)) / total, (x * dy**2).sum((1, 2)) / total
  mu11 = (x * dx * -dy).sum((1, 2)) / total  # -dy: upwards is positive, as displayed
  return np.rad2deg(0.5 * np.arctan2(2 * mu11, mu20 - mu02))


def radius_of_gyration(images: np.ndarray) -> np.ndarray:
  """The root-mean-square distance of the ink from its centre of mass [N]."""
  x = np.asarray(images, np.float64).reshape(len(images), *np.shape(images)[1:3])
  rows, cols = np.mgrid[:x.shape[1], :x.shape[2]]
  com = centre_of_mass(x)
  d2 = (rows[None] - com[:, :1, None])**2 + (cols[None] - com[:, 1:, None])**2
  return np.sqrt((x * d2).sum((1, 2)) / x.sum((1, 2)))
