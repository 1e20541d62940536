"""jaxdigits: fast, complete JAX/Flax training for handwritten digit recognition."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
  from jaxdigits.inference.predictor import Predictor

__version__ = "0.1.0"


def load(bundle: str | os.PathLike | None = None) -> Predictor:
  """A Predictor from a bundle folder, a training workdir, or (None) the shipped MNIST CNN.

  ``jaxdigits.load().predict(["digit.png"])`` works offline right after install.
  """
  # Imported here so that ``import jaxdigits`` stays instant and JAX-free.
  from jaxdigits import bundle as bundle_lib  # pylint: disable=g-import-not-at-top
  from jaxdigits.inference.predictor import Predictor  # pylint: disable=g-import-not-at-top,redefined-outer-name
  if bundle is None:
    return bundle_lib.load(bundle_lib.PRETRAINED)
  path = Path(bundle)
  if not (path / bundle_lib.MANIFEST).exists() and (
      (path / "checkpoints").is_dir() or path.name == "checkpoints"):
    return Predictor.load(path)
  return bundle_lib.load(path)
