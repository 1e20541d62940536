"""Each prepared example's row in the original raw file of its split.

tfds shuffles examples when it prepares them and keeps no raw index, so a row is found by
its content: image bytes and label. Label issues name examples by raw row (comparable with
published lists) and ``data.label_fixes`` applies a list of raw rows to the train split.
"""

from __future__ import annotations

import numpy as np

from jaxdigits.data import raw
from jaxdigits.errors import DataError


def source_indices(images: np.ndarray, labels: np.ndarray, raw_images: np.ndarray,
                   raw_labels: np.ndarray) -> np.ndarray:
  """Each example's 0-based row in the raw file, matched by image bytes and label.

  Identical copies (same pixels, same label) are matched in raw order, first to first: they
  cannot be told apart, so any assignment among them is equally right.

  Raises:
    DataError: an example is not in the raw file (another file, or altered data).
  """
  rows: dict[bytes, list[int]] = {}
  flat = np.ascontiguousarray(raw_images.reshape(len(raw_images), -1), np.uint8)
  for i in range(len(flat) - 1, -1, -1):  # reversed, so pop() hands out raw order
    rows.setdefault(flat[i].tobytes() + bytes([int(raw_labels[i])]), []).append(i)
  images = np.ascontiguousarray(np.asarray(images).reshape(len(images), -1), np.uint8)
  out = np.empty(len(images), np.int64)
  for j, (image, label) in enumerate(zip(images, labels)):
    found = rows.get(image.tobytes() + bytes([int(label)]))
    if not found:
      raise DataError(f"example {j} (label {int(label)}) is not in the raw file: the prepared "
                      f"dataset does not come from these raw files; delete the prepared "
                      f"folder ($JAXDIGITS_DATA_DIR) and prepare it again")
    out[j] = found.pop()
  return out


def raw_split(dataset: str, split: str, raw_dir: str | None, needed_by: str
              ) -> tuple[np.ndarray, np.ndarray]:
  """The raw file's (images, labels) of ``split``; ``needed_by`` names what asks for them."""
  folder = raw.raw_dir_from_env(raw_dir)
  if not folder:
    raise DataError(f"{needed_by} names rows of the raw {dataset} files, so it needs them "
                    f"locally: pass --raw_dir=DIR (training: --config.data.raw_dir=DIR) or set "
                    f"{raw.RAW_DATA_ENV}=DIR (DIR/{dataset}/ holding the original files)")
  return raw.load_split(dataset, split, raw.local_paths(dataset, folder))


def split_source_indices(dataset: str, split: str, *, start: int = 0, stop: int | None = None,
                         raw_dir: str | None = None, data_dir: str | None = None,
                         needed_by: str = "--label_issues") -> np.ndarray:
  """Raw-file rows of tfds examples [start, stop) of ``split`` ("train" or "test")."""
  from jaxdigits.data.pipeline import load_tfds  # pylint: disable=g-import-not-at-top
  raw_images, raw_labels = raw_split(dataset, split, raw_dir, needed_by)
  prepared = load_tfds(dataset, split, raw_dir=raw.raw_dir_from_env(raw_dir), data_dir=data_dir,
                       start=start, stop=stop)
  return source_indices(prepared.images, prepared.labels, raw_images, raw_labels)
