"""Serving a bundle's ``model.onnx`` through onnxruntime, without JAX.

``OnnxPredictor`` is a ``contract.Predictor``: the same ``input_shape`` (from the training
config), ``logits`` of uint8 images [N,H,W,1], ``probabilities``, ``prepare`` and
``predict``, with the same preprocessing (``preprocess.to_mnist_style``), so evaluation,
predict and the demo serve either runtime alike; ``jaxdigits.load(path, runtime="onnx")``
builds it. This module and what it imports (contract, manifest, preprocess,
data.mnist_style, config, errors: numpy, Pillow and ml_collections) never import JAX:
tests/test_export_onnx.py checks it in a fresh interpreter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from jaxdigits import manifest
from jaxdigits.errors import BundleError
from jaxdigits.inference.contract import Predictor


def _session(path: Path, data: bytes, threads: int | None) -> Any:
  # pylint: disable=g-import-not-at-top
  try:
    import onnxruntime as ort
  except ImportError:
    raise BundleError(f"{path}: serving ONNX needs onnxruntime: "
                      "pip install 'jaxdigits[onnx]'") from None
  from onnxruntime.capi import onnxruntime_pybind11_state as state
  # pylint: enable=g-import-not-at-top
  options = ort.SessionOptions()
  options.log_severity_level = 3  # errors only: its graph-optimisation notes are not news
  if threads:
    options.intra_op_num_threads = threads
  try:
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
  except (state.Fail, state.InvalidArgument, state.InvalidProtobuf, state.InvalidGraph,
          state.NotImplemented, state.RuntimeException) as e:
    reason = str(e).split(" : ")[-1].strip()
    raise BundleError(f"{path}: onnxruntime cannot load it ({reason}); the file is damaged "
                      f"or not a jaxdigits export: re-export the bundle with "
                      f"{manifest.REEXPORT}") from None


@dataclasses.dataclass(frozen=True)
class OnnxPredictor(Predictor):
  """An exported model served by onnxruntime: the Predictor contract, without JAX."""

  config: ml_collections.ConfigDict
  path: Path
  session: Any
  batch_size: int = 500

  @classmethod
  def load(cls, path: str | os.PathLike, config: ml_collections.ConfigDict,
           sha256: str | None = None, threads: int | None = None) -> OnnxPredictor:
    """Reads a ``model.onnx`` exported from a model trained with ``config``.

    Args:
      path: the file.
      config: the model's training config; it says what input the graph must read.
      sha256: the manifest's checksum of the file; a file that differs is refused.
      threads: onnxruntime's intra-op threads (None: its default, one per core).

    Raises:
      BundleError: naming the file: missing, changed, not loadable, or reading another
        input than ``config`` trains on.
    """
    path = Path(path)
    if not path.is_file():
      raise BundleError(f"{path}: no such file; export the model with {manifest.REEXPORT}")
    data = path.read_bytes()
    # Checked on the bytes onnxruntime reads, not on the file verified a moment before.
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
      raise BundleError(f"{path}: its sha256 differs from the manifest's; the file was "
                        f"changed or damaged: copy the bundle again or re-export it")
    predictor = cls(config, path, _session(path, data, threads))
    inputs, outputs = predictor.session.get_inputs(), predictor.session.get_outputs()
    shape = inputs[0].shape if len(inputs) == 1 else None
    if (shape is None or len(outputs) != 1
        or list(shape[1:]) != list(predictor.input_shape)):
      raise BundleError(f"{path}: expected one input [N, "
                        f"{', '.join(map(str, predictor.input_shape))}] and one output "
                        f"(logits), got inputs {[(i.name, i.shape) for i in inputs]}; the "
                        f"file does not belong to this config: re-export the bundle")
    return predictor

  @classmethod
  def from_bundle(cls, path: str | os.PathLike, digest: str | None = None,
                  threads: int | None = None) -> OnnxPredictor:
    """A verified bundle's ``model.onnx`` (every file of the bundle is checked, as for JAX).

    Raises:
      BundleError: the bundle fails ``manifest.verify``, or has no ``model.onnx`` (naming
        the file and why: an older export, or a model without an ONNX form).
    """
    root = Path(path)
    entry = manifest.entry_of(root, manifest.verify(root, digest), manifest.ONNX)
    return cls.load(root / manifest.ONNX, manifest.read_config(root), entry["sha256"], threads)

  def _logits(self, images: np.ndarray) -> np.ndarray:
    name = self.session.get_inputs()[0].name
    out = []
    for start in range(0, max(len(images), 1), self.batch_size):  # N = 0 runs one empty batch
      # Scaled as the JAX Predictor scales them, so both runtimes read the same floats.
      x = images[start:start + self.batch_size].astype(np.float32) * np.float32(1.0 / 255.0)
      out.append(self.session.run(None, {name: x})[0])
    logits = np.concatenate(out)
    if not np.isfinite(logits).all():
      raise BundleError(f"{self.path}: the model gave non-finite logits; its weights are "
                        f"damaged: re-export the bundle")
    return logits
