"""Turn a digit image into an MNIST-style 28x28 input.

MNIST digits were size-normalised to fit a 20x20 box (keeping the aspect ratio) and then
centred by centre of mass in a 28x28 field. Doing the same to any other digit (USPS,
a user's drawing, a photo) is what lets one model read all of them.

Every way an image can fail (missing, empty, not an image, truncated, too many pixels, a mode
PIL cannot turn grey, blank, only noise) is an ``ImageError`` naming the source, so a batch
goes on past a bad file. Nothing else escapes: a hostile file must not cost the other files.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from jaxdigits.data.mnist_style import MNIST_SIZE, mnist_style, mnist_style_batch  # noqa: F401
from jaxdigits.errors import ImageError

ImageSource = str | os.PathLike | bytes | Image.Image | np.ndarray
# A 50-megapixel photo decodes to ~200 MB of floats per copy; the demo and predict refuse above.
MAX_PIXELS = 50_000_000
# A pixel counts as ink when it differs from the background by this many grey levels; below
# it, the image is treated as blank rather than amplifying paper texture or JPEG noise.
_MIN_CONTRAST = 32
# Modes whose values are not 0..255: turned grey with numpy, since PIL's convert("L") clips
# them at 255 (a 16-bit scan of a digit became a white page).
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def source_name(source: ImageSource) -> str:
  """How errors name a source: its path, or its type for in-memory images."""
  if isinstance(source, (str, os.PathLike)):
    return str(source)
  return f"<{type(source).__name__}>"


def check_pixels(width: int, height: int, name: str) -> None:
  """Refuses an image over ``MAX_PIXELS`` (read from its header, before decoding).

  Raises:
    ImageError: naming the image, its size and the limit.
  """
  if width * height > MAX_PIXELS:
    raise ImageError(f"{name}: {width}x{height} pixels is more than jaxdigits reads "
                     f"({MAX_PIXELS // 10**6} megapixels); scale it down")


def open_image(source: str | os.PathLike | bytes, name: str | None = None) -> Image.Image:
  """Decodes an image file (a path or its bytes): the first frame, turned upright by its EXIF.

  The pixel limit is checked on the header before anything is decoded. ``name`` is how errors
  name the file (default: the path, or ``<bytes>``).

  Raises:
    ImageError: missing, empty, not an image, corrupt or truncated, or over ``MAX_PIXELS``.
  """
  name = name or source_name(source)
  if isinstance(source, bytes):
    size, fp = len(source), io.BytesIO(source)
  else:
    path = Path(source)
    if not path.exists():
      raise ImageError(f"{name}: no such file")
    if path.is_dir():
      raise ImageError(f"{name}: is a folder, not an image file")
    size, fp = path.stat().st_size, path
  if size == 0:
    raise ImageError(f"{name}: the file is empty (0 bytes); save or upload the image again")
  try:
    with Image.open(fp) as im:
      check_pixels(*im.size, name)
      im.load()  # decode now (the first frame): a truncated file fails here, not later
      return ImageOps.exif_transpose(im)
  except ImageError:
    raise
  except Image.DecompressionBombError:
    # PIL refuses before the header is even returned (over 2x its own warning limit).
    raise ImageError(f"{name}: more pixels than jaxdigits reads ({MAX_PIXELS // 10**6} "
                     f"megapixels); scale it down") from None
  except Image.UnidentifiedImageError:
    raise ImageError(f"{name}: not an image PIL can read (use PNG, JPEG, BMP, GIF, ...)") from None
  except Exception as e:  # pylint: disable=broad-except
    # Damaged files reach PIL's decoders and plugins, which raise OSError, SyntaxError,
    # ValueError, struct.error, EOFError, IndexError, ... : every one is this file's problem.
    detail = " ".join(str(e).split()) or "no detail"  # a decoder's message may span lines
    raise ImageError(f"{name}: corrupt or truncated image ({type(e).__name__}: {detail}); "
                     f"re-save or re-export it") from None


def _to_grey_levels(a: np.ndarray, name: str, nominal_16bit: bool = False) -> np.ndarray:
  """Any numeric array → float32 grey levels 0..255, scaled (not clipped) from its range.

  uint8 is taken as is. Otherwise the range is inferred from the largest value: up to 1 is
  [0, 1] (floats, masks), up to 255 is already 8-bit, up to 65535 is 16-bit, beyond that the
  maximum is white. ``nominal_16bit`` (a 16-bit file) always divides by 257, so a dark 16-bit
  scan stays dark.
  """
  if a.dtype == np.uint8:
    return a.astype(np.float32)
  if a.dtype == bool:
    return a.astype(np.float32) * 255
  if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
    raise ImageError(f"{name}: expected numeric pixels, got dtype {a.dtype}")
  a = a.astype(np.float64)
  if a.size == 0:
    return a.astype(np.float32)
  if not np.isfinite(a).all():
    raise ImageError(f"{name}: the image holds NaN or infinite values")
  if nominal_16bit:
    return (a / 257).astype(np.float32)
  top = float(a.max())
  scale = 255.0 if top <= 1 else 1.0 if top <= 255 else 1 / 257 if top <= 65535 else 255 / top
  return np.clip(a * scale, 0, 255).astype(np.float32)


def _grey_on_white(im: Image.Image, name: str) -> np.ndarray:
  """Float grey levels 0..255 with any transparency flattened onto white paper."""
  check_pixels(*im.size, name)
  if im.mode in _WIDE_MODES:
    return _to_grey_levels(np.asarray(im), name, nominal_16bit=im.mode.startswith("I;16"))
  try:
    if im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info):
      im = im.convert("RGBA")
      paper = Image.new("RGBA", im.size, (255, 255, 255, 255))
      im = Image.alpha_composite(paper, im)
    elif im.mode not in ("1", "L", "P", "RGB", "CMYK", "YCbCr"):
      im = im.convert("RGB")  # e.g. LAB, HSV: PIL turns these grey only through RGB
    return np.asarray(im.convert("L"), np.float32)
  except ValueError as e:
    raise ImageError(f"{name}: PIL cannot turn a {im.mode} image grey ({e}); save it as RGB "
                     f"or greyscale PNG or JPEG") from None


def _array_to_grey(array: np.ndarray, name: str) -> np.ndarray:
  a = np.asarray(array)
  if a.ndim == 3 and a.shape[-1] in (1, 2, 3, 4):
    check_pixels(a.shape[1], a.shape[0], name)
    if a.shape[-1] == 1:
      return _to_grey_levels(a[..., 0], name)
    levels = np.round(_to_grey_levels(a, name)).astype(np.uint8)
    if levels.size == 0:
      return levels[..., 0].astype(np.float32)
    return _grey_on_white(Image.fromarray(levels), name)  # 2, 3, 4 channels: LA, RGB, RGBA
  if a.ndim == 2:
    check_pixels(a.shape[1], a.shape[0], name)
    return _to_grey_levels(a, name)
  raise ImageError(f"{name}: expected an image array [H,W], [H,W,1], [H,W,2], [H,W,3] or "
                   f"[H,W,4], got shape {a.shape}")


def to_mnist_style(source: ImageSource, name: str | None = None) -> np.ndarray:
  """Any digit image (file path, bytes, PIL image or array) → uint8 [28, 28, 1], MNIST-style.

  ``to_ink``, then ``mnist_style`` crops to the ink, fits it into 20x20 and centres it by
  mass. The one preprocessing path for predict, the demo and evaluation on non-MNIST digits.

  Raises:
    ImageError: missing, unreadable, corrupt, too large or blank image; the message names the
      source (``name``, default ``source_name(source)``).
  """
  name = name or source_name(source)
  ink = to_ink(source, name)
  try:
    return mnist_style(ink)[..., None]
  except ValueError as e:  # to_ink leaves ink, so this is a guard, not an expected path
    raise ImageError(f"{name}: {e}") from None


def _grey(source: ImageSource, name: str) -> np.ndarray:
  if isinstance(source, (str, os.PathLike, bytes)):
    return _grey_on_white(open_image(source, name), name)
  if isinstance(source, Image.Image):
    return _grey_on_white(source, name)
  if isinstance(source, np.ndarray):
    return _array_to_grey(source, name)
  raise ImageError(f"{name}: expected a file path, bytes, PIL image or numpy array")


def to_ink(source: ImageSource, name: str | None = None) -> np.ndarray:
  """Any image → float32 [H, W] ink, bright on black at the input's size, background zeroed.

  The first frame, upright by its EXIF orientation, wide (16-bit, 32-bit, float) levels
  scaled to 0..255, transparency flattened onto white, the image turned grey, dark ink on
  light paper detected (from the border, which is mostly paper) and inverted, the background
  level and the noise above it removed. ``numbers`` segments this into digits.

  Raises:
    ImageError: missing, unreadable, corrupt, too large or blank image; the message names the
      source (``name``, default ``source_name(source)``).
  """
  name = name or source_name(source)
  grey = _grey(source, name)
  if grey.size == 0:
    raise ImageError(f"{name}: the image has no pixels")
  border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
  background = float(np.median(border))
  # Paper brighter than mid-grey means dark ink: flip so ink is bright on black, as in MNIST.
  ink = (grey - background) if background < 128 else (background - grey)
  ink = np.clip(ink, 0, None)
  if ink.max() < _MIN_CONTRAST:
    raise ImageError(f"{name}: the image is blank (no stroke stands out from the "
                     f"background); draw a darker or thicker digit")
  # Paper grain, sensor or JPEG noise left in the background would widen the crop box (one
  # speck in a corner shrinks the digit to a few pixels), so zero everything within the noise
  # level. It is estimated from the border's ink side only, max(0, noise), whose 75th
  # percentile is 0.674 sigma whether or not white paper is clipped at 255.
  border_ink = np.clip(border - background if background < 128 else background - border, 0, None)
  noise = float(np.percentile(border_ink, 75)) / 0.6745
  ink[ink < max(_MIN_CONTRAST / 2, 6 * noise)] = 0
  if not ink.any():
    raise ImageError(f"{name}: the image is blank once its noise is removed (no stroke stands "
                     f"out from the grain of the paper or sensor); use a sharper, better lit "
                     f"photo or a darker digit")
  return ink
