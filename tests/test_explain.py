"""Explanations: heat maps that depend on the model, sit on the ink, and add up."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage, stats

import jaxdigits
from jaxdigits.data import load_tfds
from jaxdigits.inference import explain

# Measured on these 20 test digits (SmoothGrad, 64 samples, noise 0.1): the shipped model's
# maps against the same network with random weights have Spearman rank correlations of median
# 0.16, largest 0.23 (integrated gradients: median 0.01, largest 0.26); two SmoothGrad maps of
# the shipped model with different noise correlate at median 0.79. The thresholds leave margin
# both ways, so a map that ignored the weights (an edge detector) or noise alone would fail.
_RANDOM_MEDIAN, _RANDOM_MAX, _SELF_MEDIAN = 0.4, 0.5, 0.6
# Median share of SmoothGrad's mass within 2 px of the ink: 0.73 measured, 0.53 for
# random weights (the ink and its border are 39% of the image).
_INK_SHARE = 0.6


@pytest.fixture(scope="module")
def predictor():
  return jaxdigits.load()


@pytest.fixture(scope="module")
def digits(raw_dir, tfds_dir):
  return np.asarray(load_tfds("mnist", "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir),
                              stop=20).images)


@pytest.fixture(scope="module")
def random_variables(predictor):
  return predictor.module.init(jax.random.key(1), jnp.zeros((1, 28, 28, 1)), train=False)


@pytest.fixture(scope="module")
def maps(predictor, digits, random_variables):
  """{(method, "trained" | "random"): maps of the 20 digits}, computed once."""
  weights = {"trained": predictor.variables, "random": random_variables}
  return {(m, w): explain.saliency(predictor.module.apply, v, digits, method=m)
          for m in explain.METHODS for w, v in weights.items()}


def _rank_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  return np.array([stats.spearmanr(u.ravel(), v.ravel())[0] for u, v in zip(a, b)])


@pytest.mark.parametrize("method", explain.METHODS)
def test_maps_depend_on_the_model_weights(predictor, digits, maps, method):
  trained, random = maps[method, "trained"], maps[method, "random"]
  assert trained.shape == (20, 28, 28) and trained.dtype == np.float32
  rho = _rank_correlations(trained, random)
  assert np.median(rho) < _RANDOM_MEDIAN and rho.max() < _RANDOM_MAX, rho
  if method == "smoothgrad":
    again = explain.saliency(predictor.module.apply, predictor.variables, digits,
                             key=jax.random.key(7))
    assert np.median(_rank_correlations(trained, again)) > _SELF_MEDIAN


def test_smoothgrad_sits_on_the_ink(digits, maps):
  near_ink = np.stack([ndimage.binary_dilation(d[..., 0] > 0, iterations=2) for d in digits])

  def ink_share(weights):
    return np.median([m[k].sum() / m.sum()
                      for m, k in zip(maps["smoothgrad", weights], near_ink)])

  trained = ink_share("trained")
  assert trained > _INK_SHARE and trained > ink_share("random") + 0.1, trained


def test_integrated_gradients_add_up_to_the_logit_change(predictor, digits, maps):
  logits, black = predictor.logits(digits), predictor.logits(np.zeros_like(digits))
  target = logits.argmax(1)
  change = logits[np.arange(20), target] - black[np.arange(20), target]
  np.testing.assert_allclose(maps["integrated_gradients", "trained"].sum((1, 2)), change,
                             rtol=0.02)


def test_target_defaults_to_the_prediction_and_is_checked(predictor, digits, maps):
  apply, variables = predictor.module.apply, predictor.variables
  predicted = predictor.logits(digits).argmax(1)
  np.testing.assert_allclose(maps["smoothgrad", "trained"],
                             explain.saliency(apply, variables, digits, predicted), rtol=1e-5)
  other = explain.saliency(apply, variables, digits, target=(predicted + 1) % 10)
  assert not np.allclose(other, maps["smoothgrad", "trained"])
  with pytest.raises(ValueError, match="classes 0..9"):
    explain.saliency(apply, variables, digits, target=10)
  with pytest.raises(ValueError, match="method"):
    explain.saliency(apply, variables, digits, method="lime")


def test_overlay_colours_the_sign(digits):
  maps = np.zeros((1, 28, 28), np.float32)
  maps[0, 5, 5], maps[0, 20, 20] = 2.0, -1.0
  rgb = explain.overlay(digits[:1], maps)
  assert rgb.shape == (1, 28, 28, 3) and rgb.dtype == np.uint8
  assert rgb[0, 5, 5, 0] > rgb[0, 5, 5, 2] and rgb[0, 20, 20, 2] > rgb[0, 20, 20, 0]
