"""Serving the not-a-digit detector: a score per input and the reason an input is refused.

A model's run or bundle may carry a detector (folder ``not_digit/``: ``models.nondigit``
says what it holds, ``training.ood_fit`` how it was fitted). ``Detector.load`` reads one;
``Predictor.not_digit`` calls ``Detector.reasons``. The score is a pure jitted function of
the detector's parameters and the uint8 model input, batched in fixed sizes so one compiled
program serves every call.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdigits.errors import BundleError
from jaxdigits.models import nondigit

BATCH = 256


@functools.partial(jax.jit, static_argnums=0)
def _scores(features: tuple[int, ...], params: Any, images: jax.Array) -> jax.Array:
  return jax.nn.sigmoid(nondigit.logits(features, params, images))


@dataclasses.dataclass(frozen=True, eq=False)  # arrays inside: compared by identity
class Detector:
  """A fitted detector: above ``threshold``, an input does not look like a digit."""

  params: Any
  threshold: float
  features: tuple[int, ...] = nondigit.FEATURES
  meta: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)

  @classmethod
  def load(cls, folder: str | Path) -> "Detector":
    """The detector in ``folder`` (a run's or bundle's ``not_digit/``).

    Raises:
      BundleError: the folder's files are missing or not a detector, naming the file.
    """
    folder = Path(folder)
    try:
      params, meta = nondigit.read(folder)
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise BundleError(f"{folder}: not a readable not-a-digit detector ({str(e)[:200]}); "
                        f"refit it with python -m jaxdigits.ood or use the original "
                        f"bundle") from None
    params = jax.tree.map(jnp.asarray, params)
    return cls(params, float(meta["threshold"]), tuple(meta["features"]), meta)

  def scores(self, images: np.ndarray) -> np.ndarray:
    """Scores in [0, 1] for uint8 model inputs [N, 28, 28, 1]; higher: less like a digit."""
    images = np.asarray(images, np.uint8)
    n = len(images)
    padded = -(-n // BATCH) * BATCH if n > BATCH else max(1, 1 << (n - 1).bit_length())
    x = np.zeros((padded, *images.shape[1:]), np.uint8)
    x[:n] = images
    size = min(BATCH, padded)  # small calls compile a few power-of-two sizes, no more
    return np.concatenate([np.asarray(_scores(self.features, self.params, x[i:i + size]))
                           for i in range(0, padded, size)])[:n].astype(np.float64)

  def reasons(self, images: np.ndarray) -> list[str | None]:
    """Per input: why it is refused ("does not look like a digit (score ... > threshold
    ...)"), or None when it looks like a digit."""
    return [f"does not look like a digit (score {s:.3f} > threshold {self.threshold:.3f})"
            if s > self.threshold else None for s in self.scores(images)]


def load_beside(root: Path) -> Detector | None:
  """The detector a run or bundle at ``root`` carries (``root/not_digit``), or None."""
  folder = nondigit.beside(root)
  return Detector.load(folder) if folder is not None else None
