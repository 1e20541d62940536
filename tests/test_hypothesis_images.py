"""Property tests: any image handed to preprocessing is an input for the model or an ImageError.

Random arrays (sizes, dtypes, channels, NaN and infinities), random images saved in every
format and mode PIL writes, then truncated or with bytes overwritten, and random bytes behind
a real format's magic number. Nothing else may escape: predict and the demo treat any other
exception as a bug that loses the batch. Derandomized, so CI always draws the same examples.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import jaxdigits
from jaxdigits.errors import ImageError
from jaxdigits.inference import contract, preprocess
from test_image_inputs import header_only_png, seven

BASE = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "PA", "CMYK", "YCbCr", "HSV", "LAB", "I", "I;16",
         "F"]
FORMATS = ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "ICO", "TGA"]
MAGIC = [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"GIF89a", b"\xff\xd8\xff\xe0", b"BM",
         b"II*\x00", b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"P5\n", b"\x00\x00\x01\x00"]


def _is_input_or_image_error(source: preprocess.ImageSource) -> None:
  if isinstance(source, bytes):  # as a file: the path predict and the demo's uploads take
    with tempfile.TemporaryDirectory() as d:
      path = Path(d) / "upload"
      path.write_bytes(source)
      return _is_input_or_image_error(path)
  try:
    x = preprocess.to_mnist_style(source)
  except ImageError as e:
    assert str(e).strip() and "\n" not in str(e)  # one line for the CLI to print
    return
  assert x.shape == (28, 28, 1) and x.dtype == np.uint8


@st.composite
def arrays(draw) -> np.ndarray:
  dtype = draw(st.sampled_from([np.uint8, np.uint16, np.int32, np.int64, np.float32,
                                np.float64, bool]))
  shape = (draw(st.integers(0, 40)), draw(st.integers(0, 40)))
  shape += draw(st.sampled_from([(), (1,), (2,), (3,), (4,), (5,), (2, 2)]))
  return draw(hnp.arrays(dtype, shape, elements=hnp.from_dtype(np.dtype(dtype))))


@given(arrays())
@settings(BASE, max_examples=500)
def test_any_array_is_an_input_or_an_image_error(array):
  _is_input_or_image_error(array)


def _picture(grey: np.ndarray, mode: str) -> Image.Image:
  im = Image.fromarray(grey)
  # Colour modes from RGB, so that CMYK, HSV, LAB, YCbCr hold real colour channels.
  return im.convert(mode) if mode in ("1", "L", "LA", "PA", "I", "I;16", "F") else (
      im.convert("RGB").convert(mode))


def _writable(mode: str, fmt: str) -> bool:
  try:
    for side in (1, 16, 48):  # ICO writes no frame below 16 pixels, so 1x1 alone says nothing
      _picture(np.zeros((side, side), np.uint8), mode).save(io.BytesIO(), fmt)
    return True
  except (OSError, ValueError, KeyError, TypeError):
    return False


# Only what PIL writes: nothing else can reach a user to hand over.
PAIRS = [(m, f) for m in MODES for f in FORMATS if _writable(m, f)]


@st.composite
def encoded_images(draw) -> bytes:
  """A random picture (a 7 with noise, or pure noise) in a random mode and format, damaged."""
  h, w = draw(st.integers(1, 48)), draw(st.integers(1, 48))
  rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
  if draw(st.booleans()):
    base = np.asarray(seven().resize((w, h)), np.float64)
  else:
    base = np.full((h, w), float(draw(st.integers(0, 255))))
  grey = np.clip(base + rng.normal(0, draw(st.floats(0, 120)), (h, w)), 0, 255).astype(np.uint8)
  mode, fmt = draw(st.sampled_from(PAIRS))
  buf = io.BytesIO()
  try:
    _picture(grey, mode).save(buf, fmt)
  except (OSError, ValueError, KeyError, TypeError):
    assume(False)  # a size this pair cannot be written at (rare after PAIRS' check)
  data = buf.getvalue()
  damage = draw(st.sampled_from(["none", "truncate", "overwrite"]))
  if damage == "truncate":
    data = data[:draw(st.integers(0, len(data)))]
  elif damage == "overwrite":
    at = draw(st.integers(0, len(data) - 1))
    data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at + 8:]
  return data


@given(encoded_images())
@settings(BASE, max_examples=600)
def test_any_file_in_any_mode_and_format_damaged_or_not_is_an_input_or_an_image_error(data):
  _is_input_or_image_error(data)


@given(st.sampled_from(MAGIC), st.binary(max_size=200))
@settings(BASE, max_examples=300)
def test_random_bytes_behind_a_real_magic_number_are_an_image_error_or_an_input(magic, rest):
  _is_input_or_image_error(magic + rest)


@given(st.integers(1, 30_000), st.integers(1, 30_000))
@settings(BASE, max_examples=100)
def test_any_size_in_a_png_header_is_an_image_error_without_decoding(width, height):
  # No pixel data follows the header: within the limit it is truncated, beyond it refused.
  _is_input_or_image_error(header_only_png(width, height))


@pytest.fixture(scope="module")
def shipped():
  return jaxdigits.load()


@given(st.lists(encoded_images(), min_size=1, max_size=4))
@settings(BASE, max_examples=40, suppress_health_check=[HealthCheck.too_slow,
                                                        HealthCheck.function_scoped_fixture])
def test_a_batch_of_random_files_gives_one_result_per_file(shipped, batch):
  with tempfile.TemporaryDirectory() as d:
    paths = [Path(d) / f"{i}.img" for i in range(len(batch))]
    for path, data in zip(paths, batch):
      path.write_bytes(data)
    results = shipped.predict(paths)
  assert len(results) == len(batch)
  assert all(isinstance(r, (contract.Prediction, ImageError)) for r in results)
