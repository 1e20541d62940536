"""Distortions, on generated images whose ink is known: shifts move each digit by its own
whole-pixel amount, rotations and scalings turn and grow it about the centre within their
bounds, all are exact at zero; test-time views are the distortions they name, and averaging
a trained model over them keeps its accuracy (the one test here on real digits)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jaxdigits
import synthetic
from jaxdigits.data import augment, load_tfds, pipeline
from jaxdigits.inference import wrappers

CENTRE = (synthetic.SIZE - 1) / 2  # 13.5: the point rotations and scalings keep


def _moved(images: np.ndarray, down: int, right: int) -> np.ndarray:
  """The images moved by whole pixels with zero fill, by plain slicing."""
  out = np.zeros_like(images)
  h, w = images.shape[1:3]
  out[:, max(down, 0):h + min(down, 0), max(right, 0):w + min(right, 0)] = (
      images[:, max(-down, 0):h + min(-down, 0), max(-right, 0):w + min(-right, 0)])
  return out


def _shift_offsets(key: jax.Array, n: int, max_shift: int) -> np.ndarray:
  """The (down, right) move ``random_shift`` draws for each of n images with ``key``: where
  a dot at the centre lands (the draw depends on the key and the batch size only)."""
  moved = np.asarray(augment.random_shift(key, pipeline.normalize(synthetic.dots(n, 13, 13)),
                                          max_shift))
  assert np.all((moved > 0).sum((1, 2, 3)) == 1) and np.all(moved.max((1, 2, 3)) == 1.0)
  lit = np.stack(np.unravel_index(moved.reshape(n, -1).argmax(1), moved.shape[1:3]), 1)
  return lit - 13


def test_random_shift_moves_each_digit_by_its_own_drawn_amount():
  n, m, key = 300, 2, jax.random.key(0)
  offsets = _shift_offsets(key, n, m)
  assert np.abs(offsets).max() <= m
  # Per example, uniformly: all 25 moves of up to 2 pixels occur among 300 draws.
  assert len({tuple(o) for o in offsets}) == (2 * m + 1)**2
  images = pipeline.normalize(synthetic.strokes(n)[0])
  moved = np.asarray(augment.random_shift(key, images, m))
  for i in range(n):  # each digit is exactly its own translate: nothing blurred, nothing lost
    np.testing.assert_array_equal(moved[i], _moved(np.asarray(images[i:i + 1]), *offsets[i])[0])
  assert not np.array_equal(_shift_offsets(jax.random.key(1), n, m), offsets)


def test_random_shift_fills_with_zeros_and_never_wraps():
  n, m, key = 200, 2, jax.random.key(3)
  offsets = _shift_offsets(key, n, m)
  corner = np.asarray(augment.random_shift(key, pipeline.normalize(synthetic.dots(n, 0, 0)), m))
  for image, (down, right) in zip(corner, offsets):
    lit = np.argwhere(image[..., 0] > 0)
    if down < 0 or right < 0:  # pushed off the top or left edge: gone, not at the far side
      assert len(lit) == 0, (down, right, lit)
    else:
      assert lit.tolist() == [[down, right]]


def test_distortions_are_the_identity_at_zero():
  images = pipeline.normalize(synthetic.strokes(16)[0])
  key = jax.random.key(0)
  np.testing.assert_array_equal(augment.random_shift(key, images, 0), images)
  np.testing.assert_array_equal(augment.random_affine(key, images, 0.0, 0.0), images)


def test_affine_turns_and_scales_about_the_centre_by_the_given_amounts():
  bars = pipeline.normalize(synthetic.strokes(4, jitter=0.0, label=0)[0])  # horizontal, centred
  b = len(bars)
  turned = np.asarray(augment.affine(bars, np.full(b, np.deg2rad(30.0)), np.ones(b)))
  np.testing.assert_allclose(np.abs(synthetic.orientation(turned)), 30.0, atol=1.0)
  grown = np.asarray(augment.affine(bars, np.zeros(b), np.full(b, 1.2)))
  np.testing.assert_allclose(synthetic.radius_of_gyration(grown)
                             / synthetic.radius_of_gyration(bars), 1.2, rtol=0.03)
  for out in (turned, grown):
    np.testing.assert_allclose(synthetic.centre_of_mass(out), CENTRE, atol=0.1)


def test_random_rotation_turns_each_digit_within_its_bound_and_keeps_it_whole():
  bars = pipeline.normalize(synthetic.strokes(200, jitter=0.0, label=0)[0])
  turned = np.asarray(augment.random_affine(jax.random.key(0), bars, 15.0, 0.0))
  angles = synthetic.orientation(turned)
  assert np.abs(angles).max() <= 15.5
  assert angles.std() > 6  # uniform in [-15, 15] has std 8.7: each digit draws its own
  np.testing.assert_allclose(synthetic.centre_of_mass(turned), CENTRE, atol=0.3)
  # Bilinear resampling changes total ink only by blurring, a few percent.
  np.testing.assert_allclose(turned.sum((1, 2, 3)), bars.sum((1, 2, 3)), rtol=0.08)


def test_random_scale_grows_and_shrinks_each_digit_within_its_bound():
  bars = pipeline.normalize(synthetic.strokes(200, jitter=0.0, label=0)[0])
  scaled = np.asarray(augment.random_affine(jax.random.key(0), bars, 0.0, 0.2))
  ratio = synthetic.radius_of_gyration(scaled) / synthetic.radius_of_gyration(bars)
  assert 0.78 < ratio.min() < 0.85 and 1.15 < ratio.max() < 1.22, (ratio.min(), ratio.max())
  np.testing.assert_allclose(synthetic.orientation(scaled), 0.0, atol=0.5)  # not turned
  np.testing.assert_allclose(synthetic.centre_of_mass(scaled), CENTRE, atol=0.3)


def test_affine_shift_is_down_and_right_and_exact_for_whole_pixels():
  images = np.asarray(pipeline.normalize(synthetic.strokes(8)[0]))
  b = len(images)
  shifted = augment.affine(images, np.zeros(b), np.ones(b), np.tile([[2.0, -1.0]], (b, 1)))
  np.testing.assert_allclose(shifted, _moved(images, 2, -1), atol=1e-6)


def test_tta_views_are_the_named_distortions():
  images = synthetic.strokes(32)[0]
  views = augment.tta_views(images)
  assert len(views) == len(augment.TTA_VIEWS) == len(set(augment.TTA_VIEWS)) == 17
  assert all(v.dtype == np.uint8 and v.shape == images.shape for v in views)
  by_name = dict(zip(augment.TTA_VIEWS, views))
  np.testing.assert_array_equal(by_name[augment.IDENTITY], images)
  for down in (-1, 0, 1):
    for right in (-1, 0, 1):
      np.testing.assert_array_equal(by_name[(0.0, 1.0, float(down), float(right))],
                                    _moved(images, down, right))
  ink, size = images.sum((1, 2, 3)).astype(float), synthetic.radius_of_gyration(images)
  for rotation in (-5.0, 0.0, 5.0):
    for scale in (0.9, 1.0, 1.1):
      view = by_name[(rotation, scale, 0.0, 0.0)]
      np.testing.assert_allclose(view.sum((1, 2, 3)), ink * scale**2, rtol=0.1)
      np.testing.assert_allclose(synthetic.radius_of_gyration(view) / size, scale, rtol=0.03)
      turn = synthetic.orientation(view) - synthetic.orientation(images)
      np.testing.assert_allclose(np.abs((turn + 90) % 180 - 90), abs(rotation), atol=1.5)


@pytest.fixture(scope="module")
def digits(raw_dir, tfds_dir):
  return load_tfds("mnist", "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir), stop=1000)


def test_augmented_predictor_averages_its_views_and_keeps_accuracy(digits):
  base = jaxdigits.load()  # the shipped MNIST CNN
  images, labels = digits.images, np.asarray(digits.labels)
  views = ((0.0, 1.0, 0.0, 0.0), (5.0, 0.9, 0.0, 0.0), (0.0, 1.0, -1.0, 1.0))
  few = wrappers.Augmented(base, views)
  expected = np.mean([base.probabilities(v) for v in augment.tta_views(images[:100], views)], 0)
  np.testing.assert_allclose(few.probabilities(images[:100]), expected, rtol=1e-4, atol=1e-6)
  plain = np.mean(base.probabilities(images).argmax(-1) == labels)
  tta = np.mean(wrappers.Augmented(base).probabilities(images).argmax(-1) == labels)
  # A warp in the wrong direction or scale would cost several points; the shipped CNN is
  # ~99% here with or without test-time augmentation.
  assert tta >= max(0.97, plain - 0.005), (tta, plain)
