"""Features equal scikit-image's on real digits."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.feature import hog as sk_hog
from skimage.filters import sobel as sk_sobel

from jaxdigits.models import features
from jaxdigits.data import load_tfds


@pytest.fixture(scope="module")
def digits(raw_dir, tfds_dir):
  return load_tfds("mnist", "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir), stop=100).images


@pytest.mark.parametrize("cell", [4, 7])
def test_hog_equals_skimage(digits, cell):
  ours = features.compute("hog", digits, cell=cell)
  ref = np.stack([sk_hog(d[..., 0], 9, (cell, cell), (2, 2), block_norm="L2-Hys")
                  for d in digits])
  np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_sobel_equals_skimage(digits):
  ref = np.stack([sk_sobel(d[..., 0]) for d in digits]).reshape(len(digits), -1)
  np.testing.assert_allclose(features.compute("sobel", digits), ref, atol=1e-5)


def test_pixels_and_cache(digits, tmp_path):
  np.testing.assert_allclose(features.compute("pixels", digits, batch_size=30),
                             digits.reshape(len(digits), -1) / 255.0, atol=1e-7)
  cache = features.FeatureCache(tmp_path)
  first = cache.get("mnist_test", "hog", digits)
  assert (tmp_path / "mnist_test_hog.npy").is_file()
  np.testing.assert_array_equal(features.FeatureCache(tmp_path).get("mnist_test", "hog", digits),
                                first)


def test_unknown_feature_names_the_field():
  with pytest.raises(ValueError, match="model.features"):
    features.extractor("fourier")
