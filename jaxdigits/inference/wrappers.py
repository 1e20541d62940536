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
from jaxdigits.errors import CheckpointError
from jaxdigits.inference.predictor import Predictor, log_probabilities

TTA_HELP = (f"test-time augmentation: average the model's answers over {len(augment.TTA_VIEWS)} "
            "shifted, turned and resized copies of each image")


@dataclasses.dataclass(frozen=True)
class Ensemble(Predictor):
  """Several trained models reading the same input, their probabilities averaged.

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

  def _logits(self, images: np.ndarray) -> np.ndarray:
    return log_probabilities(np.mean([m.probabilities(images) for m in self.members], axis=0))


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

  def _logits(self, images: np.ndarray) -> np.ndarray:
    views = augment.tta_views(images, self.views)
    return log_probabilities(np.mean([self.base.probabilities(v) for v in views], axis=0))
