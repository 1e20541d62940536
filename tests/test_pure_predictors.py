"""Predictors made of predictors, on stand-in models (no training, no dataset): an ensemble
averages every member's probabilities, test-time augmentation every view's, and they
compose."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import synthetic
from jaxdigits import config as config_lib
from jaxdigits.data import augment
from jaxdigits.errors import CheckpointError, ImageError
from jaxdigits.inference.predictor import Predictor
from jaxdigits.inference.wrappers import Augmented, Ensemble

VIEWS = (augment.IDENTITY, (0.0, 1.0, 1.0, -1.0), (5.0, 1.1, 0.0, 0.0))


@dataclasses.dataclass(frozen=True)
class BandModel(Predictor):
  """Logits linear in the ink of 10 horizontal bands: a model that sees where the ink is,
  so a moved digit gets other answers."""

  seed: int
  config: object = dataclasses.field(default_factory=config_lib.defaults)

  def _logits(self, images: np.ndarray) -> np.ndarray:
    bands = images[:, :20, :, 0].reshape(len(images), 10, -1).mean(-1) / 255
    return bands @ np.random.default_rng(self.seed).normal(size=(10, 10)) * 5


@pytest.fixture(scope="module")
def images():
  return synthetic.strokes(12)[0]


def _distinct(a: np.ndarray, b: np.ndarray) -> bool:
  return np.abs(a - b).max() > 1e-3


def test_ensemble_averages_every_member(images):
  members = tuple(BandModel(seed) for seed in range(3))
  ensemble = Ensemble(members)
  each = [m.probabilities(images) for m in members]
  assert all(_distinct(each[0], p) for p in each[1:])  # members that disagree
  np.testing.assert_allclose(ensemble.probabilities(images), np.mean(each, 0), rtol=1e-6)
  np.testing.assert_allclose(np.exp(ensemble.logits(images)), np.mean(each, 0), rtol=1e-6)
  assert ensemble.config is members[0].config and ensemble.input_shape == (28, 28, 1)
  with pytest.raises(CheckpointError, match="at least one model"):
    Ensemble(())


def test_augmented_averages_every_view(images):
  base = BandModel(0)
  views = augment.tta_views(images, VIEWS)
  each = [base.probabilities(v) for v in views]
  assert all(_distinct(each[0], p) for p in each[1:])  # views the model sees differently
  np.testing.assert_allclose(Augmented(base, VIEWS).probabilities(images), np.mean(each, 0),
                             rtol=1e-6)
  np.testing.assert_allclose(Augmented(base, (augment.IDENTITY,)).probabilities(images),
                             base.probabilities(images), rtol=1e-6)
  assert len(Augmented(base).views) == len(augment.TTA_VIEWS)


def test_wrappers_compose_and_check_their_input(images):
  members = (BandModel(1), BandModel(2))
  augmented_ensemble = Augmented(Ensemble(members), VIEWS)
  views = augment.tta_views(images, VIEWS)
  want = np.mean([np.mean([m.probabilities(v) for m in members], 0) for v in views], 0)
  np.testing.assert_allclose(augmented_ensemble.probabilities(images), want, rtol=1e-6)
  with pytest.raises(ImageError, match=r"given to a model that reads \[N, 28, 28, 1\]"):
    augmented_ensemble.logits(images[:, :16, :16])
