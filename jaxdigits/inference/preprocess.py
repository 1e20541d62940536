"""Turn a digit image into an MNIST-style 28x28 input.

MNIST digits were size-normalised to fit a 20x20 box (keeping the aspect ratio) and then
centred by centre of mass in a 28x28 field. Doing the same to any other digit (USPS,
a user's drawing, a photo) is what lets one model read all of them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from jaxdigits.data.mnist_style import MNIST_SIZE, mnist_style, mnist_style_batch  # noqa: F401
from jaxdigits.errors import ImageError




ImageSource = str | os.PathLike | Image.Image | np.ndarray
# A pixel counts as ink when it differs from the background by this many grey levels; below
# it, the image is treated as blank rather than amplifying paper texture or JPEG noise.
_MIN_CONTRAST = 32


def source_name(source: ImageSource) -> str:
  """How errors name a source: its path, or its type for in-memory images."""
  if isinstance(source, (str, os.PathLike)):
    return str(source)
  return f"<{type(source).__name__}>"


def _open(path: str | os.PathLike) -> Image.Image:
  path = Path(path)
  if not path.exists():
    raise ImageError(f"{path}: no such file")
  if path.is_dir():
    raise ImageError(f"{path}: is a folder, not an image file")
  try:
    with Image.open(path) as im:
      im.load()  # decode now: a truncated file fails here, not later
      return im.copy()
  except Image.UnidentifiedImageError:
    raise ImageError(f"{path}: not an image PIL can read (use PNG, JPEG, BMP, GIF, ...)") from None
  except (OSError, SyntaxError, ValueError) as e:
    raise ImageError(f"{path}: corrupt or truncated image ({e}); re-save or re-export it") from None


def _grey_on_white(im: Image.Image) -> np.ndarray:
  """Float grey levels 0..255 with any transparency flattened onto white paper."""
  if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
    im = im.convert("RGBA")
    paper = Image.new("RGBA", im.size, (255, 255, 255, 255))
    im = Image.alpha_composite(paper, im)
  return np.asarray(im.convert("L"), np.float32)


def _array_to_grey(array: np.ndarray) -> np.ndarray:
  a = np.asarray(array)
  if a.ndim == 3 and a.shape[-1] in (1, 3, 4):
    if a.dtype != np.uint8:
      a = _to_uint8(a)
    a = _grey_on_white(Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a))
  elif a.ndim == 2:
    a = _to_uint8(a).astype(np.float32)
  else:
    raise ImageError(f"<ndarray>: expected an image array [H,W], [H,W,1], [H,W,3] or "
                     f"[H,W,4], got shape {a.shape}")
  return a


def _to_uint8(a: np.ndarray) -> np.ndarray:
  if a.dtype == np.uint8:
    return a
  if a.dtype == bool:
    return a.astype(np.uint8) * 255
  a = a.astype(np.float32)
  # Floats in [0, 1] are the other common convention (matplotlib, skimage).
  return np.clip(a * 255 if a.max() <= 1.0 else a, 0, 255).astype(np.uint8)


def to_mnist_style(source: ImageSource) -> np.ndarray:
  """Any digit image (file path, PIL image or array) → uint8 [28, 28, 1], MNIST-style.

  ``to_ink``, then ``mnist_style`` crops to the ink, fits it into 20x20 and centres it by
  mass. The one preprocessing path for predict, the demo and evaluation on non-MNIST digits.

  Raises:
    ImageError: missing, unreadable, corrupt or blank image; the message names the source.
  """
  return mnist_style(to_ink(source))[..., None]


def to_ink(source: ImageSource) -> np.ndarray:
  """Any image → float32 [H, W] ink, bright on black at the input's size, background zeroed.

  Transparency is flattened onto white, the image turned grey, dark ink on light paper
  detected (from the border, which is mostly paper) and inverted, the background level
  and the noise above it removed. ``numbers`` segments this into digits.

  Raises:
    ImageError: missing, unreadable, corrupt or blank image; the message names the source.
  """
  if isinstance(source, (str, os.PathLike)):
    grey = _grey_on_white(_open(source))
  elif isinstance(source, Image.Image):
    grey = _grey_on_white(source)
  elif isinstance(source, np.ndarray):
    grey = _array_to_grey(source)
  else:
    raise ImageError(f"{source_name(source)}: expected a file path, PIL image or numpy array")
  if grey.size == 0:
    raise ImageError(f"{source_name(source)}: the image has no pixels")
  border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
  background = float(np.median(border))
  # Paper brighter than mid-grey means dark ink: flip so ink is bright on black, as in MNIST.
  ink = (grey - background) if background < 128 else (background - grey)
  ink = np.clip(ink, 0, None)
  if ink.max() < _MIN_CONTRAST:
    raise ImageError(f"{source_name(source)}: the image is blank (no stroke stands out from the "
                     f"background); draw a darker or thicker digit")
  # Paper grain, sensor or JPEG noise left in the background would widen the crop box (one
  # speck in a corner shrinks the digit to a few pixels), so zero everything within the noise
  # level. It is estimated from the border's ink side only, max(0, noise), whose 75th
  # percentile is 0.674 sigma whether or not white paper is clipped at 255.
  border_ink = np.clip(border - background if background < 128 else background - border, 0, None)
  noise = float(np.percentile(border_ink, 75)) / 0.6745
  ink[ink < max(_MIN_CONTRAST / 2, 6 * noise)] = 0
  return ink
