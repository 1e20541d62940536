"""Predictors made of predictors: ensembles and test-time augmentation.

Both average probabilities and give their log as logits, so everything that reads logits
(evaluation, prediction, the demo) serves them unchanged, and they compose: an ensemble of
augmented runs, or an augmented ensemble.
"""

from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np

from jaxdigits.data import augment
# Ensemble needs no JAX (the ONNX runtime composes it too), so it lives with the contract.
from jaxdigits.inference.contract import Ensemble, Predictor, log_probabilities  # noqa: F401


@dataclasses.dataclass(frozen=True)
class Augmented(Predictor):
  """Test-time augmentation: ``base``'s probabilities averaged over fixed distortions of
  each input (``augment.TTA_VIEWS``: one-pixel shifts, ±5° turns, ±10% sizes).

  Any predictor can be the base, an Ensemble or a classic model included; it costs one
  forward pass per view.
  """

  base: Predictor
  views: tuple[augment.View, ...] = augment.TTA_VIEWS

  @property
  def config(self) -> ml_collections.ConfigDict:  # type: ignore[override]
    return self.base.config

  @property
  def detector(self):  # type: ignore[override]
    return self.base.detector  # judged on the image as given, not on each view

  def _logits(self, images: np.ndarray) -> np.ndarray:
    views = augment.tta_views(images, self.views)
    return log_probabilities(np.mean([self.base.probabilities(v) for v in views], axis=0))
