"""Distortions: the training ones are exact at zero and keep the digit; test-time views are
the distortions they name, and averaging over them keeps a trained model's accuracy."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jaxdigits
from jaxdigits.data import augment
from jaxdigits.inference import predictor as predict
from jaxdigits.data import load_tfds, pipeline


@pytest.fixture(scope="module")
def digits(raw_dir, tfds_dir):
  return load_tfds("mnist", "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir), stop=1000)


def _moved(images: np.ndarray, down: int, right: int) -> np.ndarray:
  """The images moved by whole pixels with zero fill, by plain slicing."""
  out = np.zeros_like(images)
  h, w = images.shape[1:3]
  out[:, max(down, 0):h + min(down, 0), max(right, 0):w + min(right, 0)] = (
      images[:, max(-down, 0):h + min(-down, 0), max(-right, 0):w + min(-right, 0)])
  return out


def test_random_affine_is_exact_at_zero_and_keeps_the_ink(digits):
  images = pipeline.normalize(digits.images[:64])
  key = jax.random.key(0)
  np.testing.assert_array_equal(augment.random_affine(key, images, 0.0, 0.0), images)
  moved = np.asarray(augment.random_affine(key, images, 15.0, 0.0))
  ink, moved_ink = np.asarray(images).sum((1, 2, 3)), moved.sum((1, 2, 3))
  # A rotation moves pixels but keeps the digit: bilinear resampling changes total ink
  # only by blurring, a few percent.
  assert np.abs(moved - np.asarray(images)).mean() > 0.01
  np.testing.assert_allclose(moved_ink, ink, rtol=0.08)
  grown = np.asarray(augment.random_affine(key, images, 0.0, 0.2))
  assert not np.allclose(grown, images)


def test_affine_shift_is_down_and_right_and_exact_for_whole_pixels(digits):
  images = np.asarray(pipeline.normalize(digits.images[:8]))
  b = len(images)
  shifted = augment.affine(images, np.zeros(b), np.ones(b), np.tile([[2.0, -1.0]], (b, 1)))
  np.testing.assert_allclose(shifted, _moved(images, 2, -1), atol=1e-6)


def test_tta_views_are_the_named_distortions(digits):
  images = digits.images[:32]
  views = augment.tta_views(images)
  assert len(views) == len(augment.TTA_VIEWS) == len(set(augment.TTA_VIEWS))
  assert all(v.dtype == np.uint8 and v.shape == images.shape for v in views)
  by_name = dict(zip(augment.TTA_VIEWS, views))
  np.testing.assert_array_equal(by_name[(0.0, 1.0, 0.0, 0.0)], images)
  np.testing.assert_array_equal(by_name[(0.0, 1.0, 1.0, -1.0)], _moved(images, 1, -1))
  ink = images.sum((1, 2, 3)).astype(float)
  for view in [(5.0, 1.0, 0.0, 0.0), (-5.0, 1.1, 0.0, 0.0)]:
    assert np.abs(by_name[view].astype(int) - images).mean() > 1  # the digit moved
    np.testing.assert_allclose(by_name[view].sum((1, 2, 3)), ink * view[1] ** 2, rtol=0.1)


def test_augmented_predictor_averages_its_views_and_keeps_accuracy(digits):
  base = jaxdigits.load()  # the shipped MNIST CNN
  images, labels = digits.images, np.asarray(digits.labels)
  views = ((0.0, 1.0, 0.0, 0.0), (5.0, 0.9, 0.0, 0.0), (0.0, 1.0, -1.0, 1.0))
  few = predict.Augmented.of(base, views)
  expected = np.mean([base.probabilities(v) for v in augment.tta_views(images[:100], views)], 0)
  np.testing.assert_allclose(few.probabilities(images[:100]), expected, rtol=1e-4, atol=1e-6)
  plain = np.mean(base.probabilities(images).argmax(-1) == labels)
  tta = np.mean(predict.Augmented.of(base).probabilities(images).argmax(-1) == labels)
  # A warp in the wrong direction or scale would cost several points; the shipped CNN is
  # ~99% here with or without test-time augmentation.
  assert tta >= max(0.97, plain - 0.005), (tta, plain)
