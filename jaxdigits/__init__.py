"""jaxdigits: fast, complete JAX/Flax training for handwritten digit recognition."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
  from jaxdigits.inference.contract import Predictor

__version__ = "0.1.0"


def load(path_or_paths: str | os.PathLike | Sequence[str | os.PathLike] | None = None, *,
         tta: bool = False, runtime: str = "jax") -> Predictor:
  """A Predictor for a bundle, a Flax run, a classic run, or (several paths) their ensemble.

  None loads the MNIST CNN shipped with jaxdigits, so ``jaxdigits.load().predict(["digit.png"])``
  works offline right after install; ``tta`` adds test-time augmentation; ``runtime="onnx"``
  serves a bundle's ``model.onnx`` through onnxruntime without importing JAX. See
  ``jaxdigits.inference.load.load`` for what each path may be and what it raises.
  """
  # Imported here so that ``import jaxdigits`` stays instant and JAX-free.
  from jaxdigits.inference import load as load_lib  # pylint: disable=g-import-not-at-top
  return load_lib.load(path_or_paths, tta=tta, runtime=runtime)
