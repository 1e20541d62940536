"""The Predictor (parameters + apply + preprocessing) and the predict command line.

``python -m jaxdigits.predict --checkpoint=PATH image.png [more.jpg ...] [--json]``

One Predictor serves evaluation, prediction on user images and the demo, so all of them run
the same jitted forward pass on the same preprocessing.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from jaxdigits import checkpoints, config as config_lib
from jaxdigits.errors import ConfigError
from jaxdigits.data import augment
from jaxdigits.models import classic
from jaxdigits.inference import preprocess

ApplyFn = Callable[..., jax.Array]


from jaxdigits.models.forward import batched_logits  # noqa: E402  (moved; kept for callers)


def quiet_libraries() -> None:
  """For the command lines: Orbax and tfds log routine notes (read-only checkpoint folder,
  no OpenCV) as warnings, which would bury the one line per file users read."""
  logging.set_verbosity(logging.ERROR)


@dataclasses.dataclass(frozen=True)
class Prediction:
  file: str
  digit: int
  probability: float
  top3: list[tuple[int, float]]

  def to_json(self) -> dict[str, Any]:
    return {"file": self.file, "digit": self.digit, "probability": self.probability,
            "top3": [{"digit": d, "probability": p} for d, p in self.top3]}


@dataclasses.dataclass(frozen=True)
class Predictor:
  """A trained model ready for inference: config, Flax module and its variables."""

  config: ml_collections.ConfigDict
  model: nn.Module
  variables: dict[str, Any]
  batch_size: int = 500  # fastest on a 2-core CPU: benchmarks/evaluate_speed.py

  @classmethod
  def load(cls, path: str | Path) -> Predictor:
    """The best-on-validation checkpoint of a training workdir (or its checkpoints/ folder);
    for a classic model's workdir, its fitted state."""
    if (Path(path) / classic.STATE_DIR).is_dir() or Path(path).name == classic.STATE_DIR:
      return ClassicPredictor.load(path)
    config, model, variables = checkpoints.load_for_inference(path)
    return cls(config, model, variables)

  @property
  def input_shape(self) -> tuple[int, int, int]:
    return config_lib.image_shape(self.config.data)

  def _checked(self, images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.shape[1:] != self.input_shape:
      raise ValueError(f"images of shape {images.shape[1:]} given to a model that reads "
                       f"{self.input_shape}")
    return images

  def logits(self, images: np.ndarray) -> np.ndarray:
    """Logits for uint8 images [N,H,W,1] already in the model's input format."""
    return batched_logits(self.model.apply, self.variables, self._checked(images),
                          self.batch_size)

  def probabilities(self, images: np.ndarray) -> np.ndarray:
    return np.asarray(jax.nn.softmax(self.logits(images), -1))

  def prepare(self, source: preprocess.ImageSource) -> np.ndarray:
    """Any digit image → the model's uint8 input [H,W,1] (see ``preprocess.to_mnist_style``)."""
    if self.input_shape[:2] != (preprocess.MNIST_SIZE,) * 2:
      raise ConfigError(f"this model reads {self.input_shape[0]}x{self.input_shape[1]} "
                       f"{self.config.data.dataset} digits as stored, not MNIST-style images; "
                       f"train it with --config.data.mnist_style=True to predict on new images")
    return preprocess.to_mnist_style(source)

  def predict(self, sources: Sequence[preprocess.ImageSource], names: Sequence[str] | None = None
              ) -> list[Prediction | preprocess.ImageError]:
    """One Prediction per source, or the ImageError that source raised; others still run."""
    names = list(names) if names is not None else [preprocess.source_name(s) for s in sources]
    prepared: dict[int, np.ndarray] = {}
    results: list[Prediction | preprocess.ImageError] = [None] * len(sources)  # type: ignore
    for i, source in enumerate(sources):
      try:
        prepared[i] = self.prepare(source)
      except preprocess.ImageError as e:
        results[i] = e
    if prepared:
      probs = self.probabilities(np.stack(list(prepared.values())))
      for i, p in zip(prepared, probs):
        top = np.argsort(-p)[:3]
        results[i] = Prediction(names[i], int(top[0]), float(p[top[0]]),
                                [(int(d), float(p[d])) for d in top])
    return results


def _log(probs: np.ndarray) -> np.ndarray:
  """Probabilities as logits; a zero probability becomes a large negative, not -inf."""
  return np.log(np.maximum(probs, np.finfo(np.float32).tiny))


@dataclasses.dataclass(frozen=True)
class ClassicPredictor(Predictor):
  """A fitted kNN, SVM or random forest behind the same interface (``model`` is None).

  Its logits are log class probabilities where the model has them (kNN vote shares, the
  forest's tree average) and the SVMs' decision values otherwise, read like logits.
  """

  fitted: Any = None

  @classmethod
  def load(cls, path: str | Path) -> ClassicPredictor:
    config, fitted = classic.load(path)
    return cls(config, None, {}, fitted=fitted)

  def logits(self, images: np.ndarray) -> np.ndarray:
    features = classic.featurize(self.fitted, self._checked(images))
    scores = np.asarray(self.fitted.scores(features), np.float64)
    if self.fitted.name in ("knn", "random_forest"):
      return _log(scores / scores.sum(-1, keepdims=True))
    return scores


@dataclasses.dataclass(frozen=True)
class Ensemble(Predictor):
  """Several trained runs reading the same input, their probabilities averaged.

  ``config``, ``model`` and ``variables`` are the first member's (they fix the input
  format); ``logits`` are the log of the mean probability, so everything that reads logits
  (evaluation, prediction, the demo) serves an ensemble unchanged.
  """

  members: tuple[Predictor, ...] = ()

  @classmethod
  def of(cls, members: Sequence[Predictor]) -> Ensemble:
    shapes = {m.input_shape for m in members}
    if len(shapes) != 1:
      raise ConfigError(f"ensemble members read different inputs {sorted(shapes)}; combine "
                       "runs trained on the same input format")
    first = members[0]
    return cls(first.config, first.model, first.variables, first.batch_size, tuple(members))

  def logits(self, images: np.ndarray) -> np.ndarray:
    return _log(np.mean([m.probabilities(images) for m in self.members], axis=0))


@dataclasses.dataclass(frozen=True)
class Augmented(Predictor):
  """Test-time augmentation: ``base``'s probabilities averaged over fixed distortions of
  each input (``augment.TTA_VIEWS``: one-pixel shifts, ±5° turns, ±10% sizes).

  Any predictor can be the base, an Ensemble or a classic model included; it costs one
  forward pass per view.
  """

  base: Predictor | None = None
  views: tuple[augment.View, ...] = augment.TTA_VIEWS

  @classmethod
  def of(cls, base: Predictor, views: tuple[augment.View, ...] = augment.TTA_VIEWS
         ) -> Augmented:
    return cls(base.config, base.model, base.variables, base.batch_size, base, views)

  def logits(self, images: np.ndarray) -> np.ndarray:
    views = augment.tta_views(self._checked(images), self.views)
    return _log(np.mean([self.base.probabilities(v) for v in views], axis=0))


TTA_HELP = (f"test-time augmentation: average the model's answers over {len(augment.TTA_VIEWS)} "
            "shifted, turned and resized copies of each image")


def load(paths: str | Path | Sequence[str | Path], *, tta: bool = False) -> Predictor:
  """The Predictor of one run, or the Ensemble of several; with ``tta``, test-time
  augmented."""
  if isinstance(paths, (str, Path)):
    paths = [paths]
  predictor = (Predictor.load(paths[0]) if len(paths) == 1
               else Ensemble.of([Predictor.load(p) for p in paths]))
  return Augmented.of(predictor) if tta else predictor
