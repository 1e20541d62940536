"""The two predictors that hold a trained model: a Flax module, or a fitted classic model.

The contract they keep (``Predictor``: input_shape, logits, probabilities, prepare,
predict; ``Prediction``) lives in ``contract``, which needs no JAX, and is re-exported here.
``wrappers.Ensemble`` and ``wrappers.Augmented`` compose predictors; ``jaxdigits.load``
builds any of them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import ml_collections
import numpy as np

from jaxdigits.inference.contract import Prediction, Predictor, log_probabilities
from jaxdigits.models import classic
from jaxdigits.models.forward import batched_logits

__all__ = ["ClassicPredictor", "FlaxPredictor", "Prediction", "Predictor", "log_probabilities"]


@dataclasses.dataclass(frozen=True)
class FlaxPredictor(Predictor):
  """A Flax module and its inference variables (params, batch_stats)."""

  config: ml_collections.ConfigDict
  module: nn.Module
  variables: dict[str, Any]
  batch_size: int = 500  # fastest on a 2-core CPU: benchmarks/evaluate_speed.py
  detector: Any = None  # ``inference.ood.Detector`` of the run or bundle, if it has one

  def _logits(self, images: np.ndarray) -> np.ndarray:
    return batched_logits(self.module.apply, self.variables, images, self.batch_size)


@dataclasses.dataclass(frozen=True)
class ClassicPredictor(Predictor):
  """A fitted kNN, linear SVM, RBF SVM or random forest.

  Its logits are log class probabilities where the model has them (kNN vote shares, the
  forest's tree average) and the SVMs' decision values or votes otherwise, read like logits.
  """

  config: ml_collections.ConfigDict
  fitted: classic.Classic
  detector: Any = None

  def _logits(self, images: np.ndarray) -> np.ndarray:
    features = classic.featurize(self.fitted, images)
    scores = np.asarray(self.fitted.scores(features), np.float64)
    if self.fitted.name in ("knn", "random_forest"):
      return log_probabilities(scores / scores.sum(-1, keepdims=True))
    return scores
