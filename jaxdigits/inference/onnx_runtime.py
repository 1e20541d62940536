"""Serving an exported ``model.onnx`` through onnxruntime, without JAX.

``OnnxPredictor`` keeps the Predictor contract (``input_shape``, ``logits`` of uint8 images
[N,H,W,1], ``probabilities``, ``prepare``, ``predict``) and the same preprocessing
(``preprocess.to_mnist_style``), so predict and the demo serve either runtime alike. This
module and what it imports (preprocess, data.mnist_style, errors: numpy and Pillow only)
must never import JAX: tests/test_export_onnx.py checks it in a fresh interpreter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from jaxdigits.errors import BundleError, ConfigError, ImageError
from jaxdigits.inference import preprocess


@dataclasses.dataclass(frozen=True)
class Prediction:
  file: str
  digit: int
  probability: float
  top3: list[tuple[int, float]]

  def to_json(self) -> dict[str, Any]:
    return {"file": self.file, "digit": self.digit, "probability": self.probability,
            "top3": [{"digit": d, "probability": p} for d, p in self.top3]}


def softmax(logits: np.ndarray) -> np.ndarray:
  logits = np.asarray(logits, np.float64)
  e = np.exp(logits - logits.max(-1, keepdims=True))  # no overflow for large logits
  return e / e.sum(-1, keepdims=True)


def predict_sources(prepare: Callable[[preprocess.ImageSource], np.ndarray],
                    probabilities: Callable[[np.ndarray], np.ndarray],
                    sources: Sequence[preprocess.ImageSource],
                    names: Sequence[str] | None = None) -> list[Prediction | ImageError]:
  """One Prediction per source, or the ImageError that source raised; others still run."""
  names = list(names) if names is not None else [preprocess.source_name(s) for s in sources]
  prepared: dict[int, np.ndarray] = {}
  results: list[Prediction | ImageError] = [None] * len(sources)  # type: ignore
  for i, source in enumerate(sources):
    try:
      prepared[i] = prepare(source)
    except ImageError as e:
      results[i] = e
  if prepared:
    probs = probabilities(np.stack(list(prepared.values())))
    for i, p in zip(prepared, probs):
      top = np.argsort(-p)[:3]
      results[i] = Prediction(names[i], int(top[0]), float(p[top[0]]),
                              [(int(d), float(p[d])) for d in top])
  return results


def _sha256(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def _session(path: Path, data: bytes, threads: int | None) -> Any:
  try:
    import onnxruntime as ort  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise BundleError(f"{path}: serving ONNX needs onnxruntime: "
                      "pip install 'jaxdigits[onnx]'") from None
  from onnxruntime.capi import onnxruntime_pybind11_state as state  # pylint: disable=g-import-not-at-top
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
                      "or not a jaxdigits export: export the bundle again") from None


@dataclasses.dataclass(frozen=True)
class OnnxPredictor:
  """An exported model served by onnxruntime: the Predictor contract, without JAX."""

  path: Path
  session: Any
  input_shape: tuple[int, int, int]
  batch_size: int = 500

  @classmethod
  def load(cls, path: str | os.PathLike, sha256: str | None = None,
           threads: int | None = None) -> OnnxPredictor:
    """Reads ``model.onnx``; with ``sha256`` (the manifest's), refuses a changed file."""
    path = Path(path)
    if not path.is_file():
      raise BundleError(f"{path}: no such file; export the model with "
                        "python -m jaxdigits.export")
    data = path.read_bytes()
    if sha256 is not None and _sha256(data) != sha256:
      raise BundleError(f"{path}: its sha256 differs from the manifest's; the file was "
                        "changed or damaged: export the bundle again")
    session = _session(path, data, threads)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape = inputs[0].shape if len(inputs) == 1 else None
    if (shape is None or len(shape) != 4 or len(outputs) != 1
        or not all(isinstance(d, int) for d in shape[1:])):
      raise BundleError(f"{path}: expected one input [N, H, W, 1] and one output (logits), "
                        f"got inputs {[(i.name, i.shape) for i in inputs]}")
    return cls(path, session, tuple(shape[1:]))

  def _checked(self, images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != self.input_shape:
      raise ImageError(f"images of shape {images.shape} given to a model that reads "
                       f"[N, {', '.join(map(str, self.input_shape))}]; prepare each image first")
    return images

  def logits(self, images: np.ndarray) -> np.ndarray:
    """Logits [N, classes] for uint8 images [N,H,W,1] already in the model's input format."""
    images = self._checked(images)
    name = self.session.get_inputs()[0].name
    out = []
    for start in range(0, max(len(images), 1), self.batch_size):  # N = 0 runs one empty batch
      # Scaled as the JAX Predictor scales them, so both runtimes read the same floats.
      x = images[start:start + self.batch_size].astype(np.float32) * np.float32(1.0 / 255.0)
      out.append(self.session.run(None, {name: x})[0])
    logits = np.concatenate(out)
    if not np.isfinite(logits).all():
      raise BundleError(f"{self.path}: the model gave non-finite logits; its weights are "
                        "damaged: export the bundle again")
    return logits

  def probabilities(self, images: np.ndarray) -> np.ndarray:
    return softmax(self.logits(images))

  def prepare(self, source: preprocess.ImageSource) -> np.ndarray:
    """Any digit image → the model's uint8 input [H,W,1] (see ``preprocess.to_mnist_style``)."""
    if self.input_shape[:2] != (preprocess.MNIST_SIZE,) * 2:
      raise ConfigError(f"{self.path}: this model reads {self.input_shape[0]}x"
                        f"{self.input_shape[1]} digits as stored, not MNIST-style images; "
                        "train it with --config.data.mnist_style=True to read new images")
    return preprocess.to_mnist_style(source)

  def predict(self, sources: Sequence[preprocess.ImageSource],
              names: Sequence[str] | None = None) -> list[Prediction | ImageError]:
    """One Prediction per source, or the ImageError that source raised; others still run."""
    return predict_sources(self.prepare, self.probabilities, sources, names)
