"""The Predictor contract, without JAX: what every model offers evaluation, predict and the demo.

A Predictor reads uint8 digit images ``[N, H, W, 1]`` in its ``input_shape`` (bright ink on
black, as stored in the datasets) and gives ``logits`` and ``probabilities`` for them;
``prepare`` turns any image (file, PIL image, array) into that input, and ``predict`` does
both for a list of images, one ``Prediction`` or ``ImageError`` each. A bundle, a Flax run,
a classic run, an ensemble, a test-time augmented model or an ONNX export served by
onnxruntime all serve every command alike.

This module imports numpy, Pillow and ml_collections only, so that the ONNX runtime
(``onnx_runtime.OnnxPredictor``) and ensembles of it never import JAX; the predictors that
hold a JAX model live in ``predictor`` and ``wrappers``.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Sequence

import ml_collections
import numpy as np

from jaxdigits import config as config_lib
from jaxdigits.errors import CheckpointError, ConfigError, ImageError
from jaxdigits.inference import preprocess


def softmax(logits: np.ndarray) -> np.ndarray:
  """Probabilities of logits [N, classes], in float64: log loss must not see probabilities
  that sum to 1 - 1e-7, and the max is taken out so large logits cannot overflow."""
  logits = np.asarray(logits, np.float64)
  e = np.exp(logits - logits.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class Prediction:
  """One image's answer. ``reason`` set (and ``digit`` None): the model's detector says the
  image does not look like a digit; ``probability`` and ``top3`` still hold the classifier's
  guess, which the JSON row leaves out."""

  file: str
  digit: int | None
  probability: float
  top3: list[tuple[int, float]]
  reason: str | None = None

  def to_json(self) -> dict[str, Any]:
    if self.reason is not None:
      return {"file": self.file, "digit": None, "reason": self.reason}
    return {"file": self.file, "digit": self.digit, "probability": self.probability,
            "top3": [{"digit": d, "probability": p} for d, p in self.top3]}


def log_probabilities(probs: np.ndarray) -> np.ndarray:
  """Probabilities as logits; a zero probability becomes a large negative, not -inf."""
  return np.log(np.maximum(probs, np.finfo(np.float32).tiny))


class Predictor(abc.ABC):
  """What every model offers inference: its input, logits, probabilities, predictions.

  Attributes:
    config: the training config of the model (an ensemble's or a wrapper's: its first
      member's); ``config.data`` says what the model reads and was trained on.
  """

  config: ml_collections.ConfigDict
  # The not-a-digit detector the model's run or bundle carries (``inference.ood.Detector``),
  # or None: classic runs without one, bundles written before detectors, the ONNX runtime.
  detector: Any = None

  @property
  def input_shape(self) -> tuple[int, int, int]:
    """The (H, W, 1) of the uint8 images ``logits`` reads."""
    return config_lib.image_shape(self.config.data)

  @abc.abstractmethod
  def _logits(self, images: np.ndarray) -> np.ndarray:
    """Logits for images already checked to have ``input_shape``."""

  def logits(self, images: np.ndarray) -> np.ndarray:
    """Logits [N, 10] for uint8 images [N, H, W, 1] already in the model's input format.

    Raises:
      ImageError: the images are not in the model's input shape.
      CheckpointError: the model gave a NaN or infinite logit: it is damaged.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != self.input_shape:
      raise ImageError(f"images of shape {images.shape} given to a model that reads "
                       f"[N, {', '.join(map(str, self.input_shape))}]; prepare each image first")
    logits = np.asarray(self._logits(images))
    # The one check of every answer served (probabilities included: the softmax of finite
    # logits is finite); NaN weights otherwise come out as "0 (p=nan)", served as an answer.
    if not np.isfinite(logits).all():
      bad = int((~np.isfinite(logits)).any(axis=-1).sum())
      raise CheckpointError(
          f"the model is damaged: it gave NaN or infinite logits for {bad} of {len(logits)} "
          f"images, so it refuses to answer; its weights are corrupt or it was trained into "
          f"NaN: load it from an intact copy of its run or bundle, or retrain it")
    return logits

  def probabilities(self, images: np.ndarray) -> np.ndarray:
    return softmax(self.logits(images))

  def not_digit(self, images: np.ndarray) -> list[str | None]:
    """Per uint8 model input [N, H, W, 1] (as ``logits`` reads): why it does not look like
    a digit (``"does not look like a digit (score 0.981 > threshold 0.783)"``), or None when
    it does. A model without a detector answers None for every input.

    Raises:
      ImageError: the images are not in the model's input shape.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != self.input_shape:
      raise ImageError(f"images of shape {images.shape} given to a model that reads "
                       f"[N, {', '.join(map(str, self.input_shape))}]; prepare each image first")
    if self.detector is None:
      return [None] * len(images)
    return self.detector.reasons(images)

  def _check_reads_new_images(self) -> None:
    if self.input_shape[:2] != (preprocess.MNIST_SIZE,) * 2:
      raise ConfigError(
          f"this model reads {self.input_shape[0]}x{self.input_shape[1]} "
          f"{self.config.data.dataset} digits as stored, not MNIST-style images; train it with "
          f"--config.data.mnist_style=True to read new images")

  def prepare(self, source: preprocess.ImageSource) -> np.ndarray:
    """Any digit image → the model's uint8 input [H, W, 1] (``preprocess.to_mnist_style``).

    Raises:
      ConfigError: the model reads native 16x16 USPS digits, not new images.
      ImageError: the image cannot be read or holds no digit.
    """
    self._check_reads_new_images()
    return preprocess.to_mnist_style(source)

  def predict(self, sources: Sequence[preprocess.ImageSource],
              names: Sequence[str] | None = None, *, reject: bool = True
              ) -> list[Prediction | ImageError]:
    """One Prediction per source, or the ImageError that source raised; others still run.

    With ``reject`` (the default), an image the detector refuses (``not_digit``) is a
    Prediction with ``digit`` None and its ``reason``.
    """
    self._check_reads_new_images()  # once for all, not once per image
    names = list(names) if names is not None else [preprocess.source_name(s) for s in sources]
    prepared: dict[int, np.ndarray] = {}
    results: list[Prediction | ImageError | None] = [None] * len(sources)
    for i, source in enumerate(sources):
      try:
        prepared[i] = preprocess.to_mnist_style(source)
      except ImageError as e:
        results[i] = e
    if prepared:
      x = np.stack(list(prepared.values()))
      probs = self.probabilities(x)
      reasons = self.not_digit(x) if reject else [None] * len(x)
      for i, p, reason in zip(prepared, probs, reasons):
        top = np.argsort(-p)[:3]
        results[i] = Prediction(names[i], None if reason else int(top[0]), float(p[top[0]]),
                                [(int(d), float(p[d])) for d in top], reason)
    return results  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class Ensemble(Predictor):
  """Several trained models reading the same input, their probabilities averaged.

  Its logits are the log of that mean, so everything that reads logits serves it unchanged.
  ``config`` is the first member's: it names the dataset evaluation defaults to. A member
  that reads another input shape refuses the images (``jaxdigits.load`` checks this first).
  """

  members: tuple[Predictor, ...]

  def __post_init__(self):
    if not self.members:
      raise CheckpointError("an ensemble needs at least one model; give one or more paths")
    object.__setattr__(self, "members", tuple(self.members))

  @property
  def config(self) -> ml_collections.ConfigDict:  # type: ignore[override]
    return self.members[0].config

  @property
  def detector(self) -> Any:  # type: ignore[override]
    return self.members[0].detector  # the first member's, as its config

  def _logits(self, images: np.ndarray) -> np.ndarray:
    return log_probabilities(np.mean([m.probabilities(images) for m in self.members], axis=0))
