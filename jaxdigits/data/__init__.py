"""Datasets: raw files → tfds builders → in-memory splits → device-resident batches."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from jaxdigits.errors import DataError

if TYPE_CHECKING:
  from jaxdigits.data.pipeline import Split, Splits, load_splits, load_tfds

__all__ = ["DataError", "Split", "Splits", "load_splits", "load_tfds"]


def __getattr__(name: str) -> Any:
  # Lazy: importing any submodule runs this file first, and mnist_style serves the JAX-free
  # ONNX path (inference.onnx_runtime); the pipeline pulls in JAX and tfds.
  if name in ("Split", "Splits", "load_splits", "load_tfds"):
    return getattr(importlib.import_module("jaxdigits.data.pipeline"), name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
