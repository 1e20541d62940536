"""MNIST-style preprocessing: crop, fit into 20x20 keeping aspect, centre by mass."""

import numpy as np
import pytest

from jaxdigits.inference import preprocess


def test_off_centre_wide_stroke_is_fitted_and_centred():
  canvas = np.zeros((200, 300), np.uint8)
  canvas[150:170, 20:120] = 255  # a wide bar in a corner
  out = preprocess.mnist_style(canvas)
  assert out.shape == (28, 28) and out.dtype == np.uint8
  rows, cols = np.nonzero(out > 25)
  assert cols.max() - cols.min() + 1 == 20  # longest side fills the 20-pixel box
  assert rows.max() - rows.min() + 1 <= 6  # aspect ratio kept (100x20 → 20x4)
  ys, xs = np.mgrid[:28, :28]
  assert abs((out * ys).sum() / out.sum() - 13.5) < 1 and abs((out * xs).sum() / out.sum() - 13.5) < 1


def test_blank_image_is_refused():
  with pytest.raises(ValueError, match="blank"):
    preprocess.mnist_style(np.zeros((28, 28), np.uint8))
