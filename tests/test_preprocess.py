"""MNIST-style preprocessing on drawn images: crop to the ink, fit it into 20x20 keeping the
aspect ratio, centre it by mass (not by its box), read dark-on-light like light-on-dark,
and refuse an image with nothing on it."""

import numpy as np
import pytest
from PIL import Image

import synthetic
from jaxdigits.errors import ImageError
from jaxdigits.inference import preprocess

CENTRE = 13.5


def _extent(out: np.ndarray) -> tuple[int, int]:
  rows, cols = np.nonzero(out > 25)
  return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def test_off_centre_wide_stroke_is_fitted_and_centred():
  canvas = np.zeros((200, 300), np.uint8)
  canvas[150:170, 20:120] = 255  # a wide bar in a corner
  out = preprocess.mnist_style(canvas)
  assert out.shape == (28, 28) and out.dtype == np.uint8 and out.max() >= 250
  height, width = _extent(out)
  assert width == 20  # longest side fills the 20-pixel box
  assert height <= 6  # aspect ratio kept (100x20 → 20x4)
  np.testing.assert_allclose(synthetic.centre_of_mass(out[None]), [[CENTRE, CENTRE]], atol=1)


@pytest.mark.parametrize("rows, cols", [(slice(40, 46), slice(50, 53)),  # small: enlarged
                                        (slice(0, 300), slice(100, 160))])  # tall: shrunk
def test_longer_side_fills_twenty_pixels(rows, cols):
  canvas = np.zeros((300, 300), np.uint8)
  canvas[rows, cols] = 200
  height, width = _extent(preprocess.mnist_style(canvas))
  assert height == 20
  assert abs(width - round(20 * (cols.stop - cols.start) / (rows.stop - rows.start))) <= 1


def test_centred_by_mass_not_by_its_box():
  # An upright bar with a long arm to the right: fitted into 20x20, the box's centre is
  # 3.6 pixels right of the ink's centre of mass (little enough to centre it whole).
  canvas = np.zeros((100, 100), np.uint8)
  canvas[10:90, 10:20] = 255
  canvas[44:56, 20:90] = 255
  out = preprocess.mnist_style(canvas)
  (com_row, com_col), = synthetic.centre_of_mass(out[None])
  assert abs(com_row - CENTRE) < 0.6 and abs(com_col - CENTRE) < 0.6, (com_row, com_col)
  _, cols = np.nonzero(out > 25)
  assert (cols.min() + cols.max()) / 2 - CENTRE > 3  # so the box is well off-centre


def test_dark_ink_on_paper_reads_like_bright_ink_on_black():
  bright = np.zeros((120, 90), np.uint8)
  bright[20:100, 40:52] = 255
  bright[20:32, 20:52] = 255  # a "7"
  paper = 255 - bright  # the same digit in pen on white paper
  want = preprocess.to_mnist_style(bright)
  assert want.shape == (28, 28, 1) and want.dtype == np.uint8
  np.testing.assert_array_equal(preprocess.to_mnist_style(paper), want)
  np.testing.assert_array_equal(preprocess.to_mnist_style(Image.fromarray(paper)), want)
  assert want[0].max() == 0 and want[:, 0].max() == 0 and want.max() >= 250  # black border


@pytest.mark.parametrize("level", [0, 128, 255])
def test_uniform_images_are_refused_as_blank(level, tmp_path):
  with pytest.raises(ValueError, match="blank"):
    preprocess.mnist_style(np.zeros((28, 28), np.uint8))
  path = tmp_path / "blank.png"
  Image.fromarray(np.full((40, 30), level, np.uint8)).save(path)
  with pytest.raises(ImageError, match=rf"{path}: the image is blank"):
    preprocess.to_mnist_style(path)


def test_faint_marks_below_the_contrast_floor_are_refused():
  faint = np.full((64, 64), 240, np.uint8)
  faint[20:40, 30:34] = 225  # 15 grey levels: paper texture, not a stroke
  with pytest.raises(ImageError, match="blank"):
    preprocess.to_mnist_style(faint)
  faint[20:40, 30:34] = 100  # a real stroke on the same paper is read
  assert preprocess.to_mnist_style(faint).max() >= 250
