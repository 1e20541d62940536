"""The not-a-digit detector: a small CNN scoring how little an input looks like a digit.

Separate from the classifier it guards, so any model (Flax, classic, an ensemble) can carry
one. It reads the classifier's own input (uint8 MNIST-style 28x28) and gives one logit;
``sigmoid`` of it is the score a threshold is set on. Trained with generated non-digits as
outliers (``training.ood_fit``), served by ``inference.ood``. On disk, a folder of two
files: ``params.npz`` (arrays only, read with allow_pickle=False) and ``detector.json``
(the threshold, the layer widths, and how both were chosen).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

FOLDER, PARAMS, META = "not_digit", "params.npz", "detector.json"
FORMAT = "jaxdigits-not-digit"
FEATURES = (24, 48, 48)


class NotDigitNet(nn.Module):
  """Three strided 3x3 convolutions (28 → 14 → 7 → 4) and a linear read-out: 32k params."""

  features: Sequence[int] = FEATURES

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for width in self.features:
      x = nn.relu(nn.Conv(width, (3, 3), strides=2)(x))
    return nn.Dense(1)(x.reshape(x.shape[0], -1))[:, 0]


def logits(features: Sequence[int], params: Any, images: jax.Array) -> jax.Array:
  """Not-a-digit logits [N] for uint8 images [N, 28, 28, 1] (positive: not a digit)."""
  x = images.astype(jnp.float32) * (1.0 / 255.0)
  return NotDigitNet(tuple(features)).apply({"params": params}, x)


def beside(root: str | Path) -> Path | None:
  """The detector folder a run or bundle at ``root`` carries (``root/not_digit``), or None."""
  folder = Path(root) / FOLDER
  return folder if folder.is_dir() else None


def save(folder: Path, params: Any, meta: dict[str, Any]) -> None:
  """Writes ``params.npz`` and ``detector.json`` into ``folder`` (created)."""
  folder.mkdir(parents=True, exist_ok=True)
  flat = {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(params).items()}
  with (folder / PARAMS).open("wb") as f:
    np.savez(f, **flat)
  (folder / META).write_text(json.dumps({"format": FORMAT, **meta}, indent=2) + "\n")


def read(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
  """(params, meta) of a detector folder; ValueError/OSError/KeyError say what is wrong."""
  meta = json.loads((folder / META).read_text())
  if not isinstance(meta, dict) or meta.get("format") != FORMAT:
    raise ValueError(f"{folder / META}: not a jaxdigits not-a-digit detector")
  threshold, features = meta.get("threshold"), meta.get("features")
  if not isinstance(threshold, float) or not 0 < threshold < 1:
    raise ValueError(f"{folder / META}: 'threshold' must be a number in (0, 1)")
  if (not isinstance(features, list) or not features
      or not all(type(f) is int and 0 < f <= 1024 for f in features)):
    raise ValueError(f"{folder / META}: 'features' must be a list of layer widths")
  with np.load(folder / PARAMS, allow_pickle=False) as z:
    flat = {tuple(k.split("/")): np.asarray(z[k], np.float32) for k in z.files}
  params = traverse_util.unflatten_dict(flat)
  abstract = jax.eval_shape(lambda: NotDigitNet(tuple(features)).init(
      jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"])
  want = {k: v.shape for k, v in traverse_util.flatten_dict(abstract).items()}
  got = {k: v.shape for k, v in flat.items()}
  if want != got:
    raise ValueError(f"{folder / PARAMS}: arrays do not fit a detector of widths {features}")
  return params, meta
