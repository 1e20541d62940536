"""Generated non-digits: letters, symbols, shapes, scribbles and textures, MNIST-style.

The outliers the not-a-digit detector is trained on (outlier exposure) and measured against.
Each image is drawn bright on black on a 64x64 canvas (random stroke width, affine warp,
blur), then goes through ``mnist_style`` (the function ``preprocess.to_mnist_style`` ends
with: fitted into 20x20, centred by mass in 28x28), so it looks like what the model reads.

Splits share no generator stream (the seed is combined with the split) and, where the
family allows it, no fonts or kinds: ``heldout`` letters come from fonts the ``train`` and
``validation`` letters never use, and about a third of its shapes, scribbles and textures
are kinds (``UNSEEN``: smileys, coiled loops, stripes and checks) the others never draw.
Fonts are matplotlib's bundled ones (found without importing matplotlib), so every machine
with the dev dependencies draws the same images; system fonts (``/usr/share/fonts``, e.g.
Liberation) are added to ``heldout`` only.

Glyphs a person would read as a digit are never drawn (``EXCLUDED``, with the digit each
reads as); nor are plain circles or ellipses (0); an image whose ink spreads along one
direction only (a bar or sliver: 1) is drawn again (``_bar_like``).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from jaxdigits.data.mnist_style import mnist_style

FAMILIES = ("letters", "shapes", "scribbles", "noise")
SPLITS = ("train", "validation", "heldout")
CANVAS = 64

# Glyph → the digit a reader could take it for. Never rendered, alone or in a string.
EXCLUDED = {
    "O": "0", "o": "0", "D": "0", "Q": "0", "θ": "0", "σ": "0", "°": "0",
    "l": "1", "I": "1", "i": "1", "|": "1", "!": "1", "/": "1", "\\": "1", "j": "1",
    "J": "1", "(": "1", ")": "1", "[": "1", "]": "1", "'": "1", "`": "1", ",": "1",
    ".": "1", ":": "1", ";": "1", "-": "1", "_": "1", "¦": "1", "ι": "1",
    "Z": "2", "z": "2", "?": "2", "ζ": "2",
    "ξ": "3", "ʒ": "3", "З": "3",
    "Ч": "4", "y": "4", "Y": "4", "h": "4",
    "S": "5", "s": "5", "$": "5", "§": "5", "∫": "5",
    "b": "6", "G": "6", "б": "6", "δ": "6", "e": "6",
    "T": "7", "⌐": "7", "¬": "7", "Γ": "7", "¶": "9",
    "B": "8", "β": "8", "&": "8", "∞": "8",
    "q": "9", "g": "9", "a": "9", "d": "9", "ρ": "9", "P": "9", "p": "9",
}
EXCLUDED.update({str(d): str(d) for d in range(10)})
_GLYPHS = ("ACEFHKLMNRUVWXacfkmnrtuvwx"
           "αγλμπΣΩΔΦΨ" "ЖЛПФЯДИ" "+×#@%*=~^<>{}€¥©®™✓★☺√≈≠±÷♣♠♥")
GLYPHS = "".join(c for c in _GLYPHS if c not in EXCLUDED)

# Matplotlib's bundled fonts, by split; heldout also takes the machine's system fonts.
_MPL_FONTS = {
    "train": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
              "DejaVuSans-BoldOblique.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf",
              "STIXGeneral.ttf", "STIXGeneralBol.ttf"),
    "heldout": ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
                "DejaVuSansMono-Oblique.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf"),
}
_SYSTEM_FONTS = Path("/usr/share/fonts/truetype")


def font_files(split: str) -> list[Path]:
  """The font files ``split`` renders letters with (validation shares train's fonts)."""
  spec = importlib.util.find_spec("matplotlib")
  base = (Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf"
          if spec and spec.submodule_search_locations else None)
  names = _MPL_FONTS["heldout" if split == "heldout" else "train"]
  found = [base / n for n in names if base is not None and (base / n).is_file()]
  if split == "heldout" and _SYSTEM_FONTS.is_dir():
    found += sorted(p for p in _SYSTEM_FONTS.rglob("*.ttf") if "DejaVu" not in p.name)
  return found


def _seed(seed: int, split: str) -> np.random.Generator:
  return np.random.default_rng([seed, SPLITS.index(split), 0x6e6f6e64])


def _canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
  im = Image.new("L", (CANVAS, CANVAS), 0)
  return im, ImageDraw.Draw(im)


def _points(rng: np.random.Generator, n: int, lo: float = 8, hi: float = CANVAS - 8
            ) -> list[tuple[float, float]]:
  return [tuple(p) for p in rng.uniform(lo, hi, (n, 2))]


def _circle(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, w: int) -> None:
  draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=255, width=w)


def _polygon(rng: np.random.Generator, sides: int, r: float, star: bool = False
             ) -> list[tuple[float, float]]:
  turn = rng.uniform(0, 2 * math.pi)
  count = sides * (2 if star else 1)
  radius = lambda k: r * (0.42 if star and k % 2 else 1.0)
  return [(32 + radius(k) * math.cos(turn + 2 * math.pi * k / count),
           32 + radius(k) * math.sin(turn + 2 * math.pi * k / count)) for k in range(count)]


# --- shapes ----------------------------------------------------------------------------
def _circle_cross(rng, draw, w):
  _circle(draw, 32, 32, 22, w)
  if rng.random() < 0.5:
    draw.line((16, 16, 48, 48), fill=255, width=w); draw.line((16, 48, 48, 16), fill=255, width=w)
  else:
    draw.line((32, 8, 32, 56), fill=255, width=w); draw.line((8, 32, 56, 32), fill=255, width=w)


def _triangle(rng, draw, w):
  pts = _polygon(rng, 3, 24)
  draw.line(pts + pts[:1], fill=255, width=w, joint="curve")


def _star(rng, draw, w):
  pts = _polygon(rng, int(rng.integers(5, 8)), 26, star=True)
  draw.line(pts + pts[:1], fill=255, width=w, joint="curve")


def _grid(rng, draw, w):
  n = int(rng.integers(2, 5))
  for k in np.linspace(10, 54, n + 1):
    draw.line((k, 10, k, 54), fill=255, width=w); draw.line((10, k, 54, k), fill=255, width=w)


def _box_cross(rng, draw, w):
  draw.rectangle((10, 14, 54, 50), outline=255, width=w)
  draw.line((10, 14, 54, 50), fill=255, width=w)
  if rng.random() < 0.6:
    draw.line((10, 50, 54, 14), fill=255, width=w)


def _arrow(rng, draw, w):
  draw.line((8, 32, 56, 32), fill=255, width=w)
  draw.line((56, 32, 40, 16), fill=255, width=w); draw.line((56, 32, 40, 48), fill=255, width=w)
  if rng.random() < 0.5:
    draw.line((8, 32, 20, 20), fill=255, width=w); draw.line((8, 32, 20, 44), fill=255, width=w)


def _spiral(rng, draw, w):
  turns = rng.uniform(2.2, 4)
  t = np.linspace(0, turns * 2 * math.pi, 200)
  r = 26 * t / t[-1]
  pts = list(zip(32 + r * np.cos(t), 32 + r * np.sin(t)))
  draw.line(pts, fill=255, width=w, joint="curve")


def _hexagon_spokes(rng, draw, w):
  pts = _polygon(rng, int(rng.integers(5, 9)), 24)
  draw.line(pts + pts[:1], fill=255, width=w, joint="curve")
  for p in pts[::2]:
    draw.line((32, 32, *p), fill=255, width=w)


def _smiley(rng, draw, w):
  _circle(draw, 32, 32, 24, w)
  for x in (24, 40):
    draw.ellipse((x - 3, 22, x + 3, 28), fill=255)
  draw.arc((18, 22, 46, 46), 20, 160, fill=255, width=w)


def _crossed_diamond(rng, draw, w):
  draw.line(((32, 6), (58, 32), (32, 58), (6, 32), (32, 6)), fill=255, width=w)
  draw.line((6, 32, 58, 32), fill=255, width=w); draw.line((32, 6, 32, 58), fill=255, width=w)


SHAPES = (_circle_cross, _triangle, _star, _grid, _box_cross, _arrow, _spiral, _hexagon_spokes,
          _crossed_diamond, _smiley)


# --- scribbles --------------------------------------------------------------------------
def _walk(rng, draw, w):
  for _ in range(int(rng.integers(1, 4))):
    steps = rng.normal(0, 9, (int(rng.integers(10, 25)), 2)).cumsum(0) + rng.uniform(20, 44, 2)
    draw.line([tuple(p) for p in np.clip(steps, 2, CANVAS - 2)], fill=255, width=w,
              joint="curve")


def _zigzag(rng, draw, w):
  n = int(rng.integers(6, 12))
  xs = np.linspace(6, 58, n)
  ys = np.where(np.arange(n) % 2, 12, 52) + rng.normal(0, 4, n)
  draw.line(list(zip(xs, ys)), fill=255, width=w, joint="curve")


def _tangle(rng, draw, w):
  draw.line(_points(rng, int(rng.integers(7, 14))), fill=255, width=w, joint="curve")


def _loops(rng, draw, w):
  t = np.linspace(0, 2 * math.pi * rng.uniform(3, 6), 300)
  x = np.linspace(8, 56, t.size) + 7 * np.cos(t)
  y = 32 + rng.uniform(8, 14) * np.sin(t)
  draw.line(list(zip(x, y)), fill=255, width=w, joint="curve")


def _hatching(rng, draw, w):
  n = int(rng.integers(4, 9))
  angle = rng.uniform(0, math.pi)
  along = np.array([math.cos(angle), math.sin(angle)])
  across = np.array([-along[1], along[0]])
  for k in np.linspace(-20, 20, n):
    mid = 32 + k * across + rng.normal(0, 3, 2)
    half = rng.uniform(8, 16) * along
    draw.line((*(mid - half), *(mid + half)), fill=255, width=w)
  if rng.random() < 0.5:
    draw.line((*(32 - 26 * across), *(32 + 26 * across)), fill=255, width=w)


def _scrawl(rng, draw, w):
  # Several short random strokes over one another, like a crossed-out word.
  for _ in range(int(rng.integers(4, 8))):
    draw.line(_points(rng, 3), fill=255, width=w, joint="curve")


SCRIBBLES = (_walk, _zigzag, _tangle, _hatching, _scrawl, _loops)


# --- textures and blobs (drawn as arrays) -----------------------------------------------
def _smooth(rng: np.random.Generator, scale: float) -> np.ndarray:
  im = Image.fromarray((rng.random((CANVAS, CANVAS)) * 255).astype(np.uint8))
  return np.asarray(im.filter(ImageFilter.GaussianBlur(scale)), np.float32)


def _uniform_noise(rng, draw, w):
  return rng.random((CANVAS, CANVAS)) * 255 * (rng.random((CANVAS, CANVAS)) < rng.uniform(.2, 1))


def _blobs(rng, draw, w):
  x = _smooth(rng, rng.uniform(2, 5))
  return np.where(x > np.percentile(x, rng.uniform(55, 85)), 255.0, 0.0)


def _filled(rng, draw, w):
  pts = _points(rng, int(rng.integers(5, 9)), 4, 60)
  draw.polygon(pts, fill=255)
  return None


def _dots(rng, draw, w):
  for x, y in _points(rng, int(rng.integers(6, 30)), 4, 60):
    r = rng.uniform(1.5, 4)
    draw.ellipse((x - r, y - r, x + r, y + r), fill=255)


def _photo(rng, draw, w):
  # A photo-like patch: a gradient, soft texture and grain, with no dark background.
  yy, xx = np.mgrid[0:CANVAS, 0:CANVAS] / CANVAS
  a, b = rng.normal(0, 1, 2)
  return np.clip(120 + 80 * (a * xx + b * yy) + _smooth(rng, 3) - 128 +
                 rng.normal(0, 25, (CANVAS, CANVAS)), 0, 255)


def _stripes(rng, draw, w):
  yy, xx = np.mgrid[0:CANVAS, 0:CANVAS]
  angle = rng.uniform(0, math.pi)
  period = rng.uniform(5, 14)
  wave = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
  if rng.random() < 0.5:
    wave = wave * np.sin((xx * math.sin(angle) - yy * math.cos(angle)) * 2 * math.pi / period)
  return (wave > 0) * 255.0


def _speckle(rng, draw, w):
  x = _smooth(rng, 1.2)
  return np.where(x > np.percentile(x, 70), rng.uniform(120, 255, x.shape), 0)


NOISE = (_uniform_noise, _blobs, _filled, _dots, _photo, _speckle, _stripes)
# One kind per family that only the heldout split draws (a third of its images of that
# family), so the held-out figures include kinds the detector never saw.
UNSEEN = {"shapes": _smiley, "scribbles": _loops, "noise": _stripes}


FALLBACK = "ACEFHKLMNRUVWXkmnrvwx#@%*+"  # drawn instead of glyphs a font lacks


def sample_text(rng: np.random.Generator) -> str:
  """One to three glyphs of ``GLYPHS`` (never one of ``EXCLUDED``)."""
  return "".join(rng.choice(list(GLYPHS), int(rng.choice([1, 1, 1, 2, 3]))))


def _letters(rng: np.random.Generator, split: str) -> Callable:
  fonts = font_files(split)
  if not fonts:
    raise FileNotFoundError("no font files found: install matplotlib (it bundles the fonts "
                            "the non-digit letters are drawn with)")

  def draw_letters(rng, draw, w):
    text = sample_text(rng)
    font = ImageFont.truetype(str(fonts[int(rng.integers(len(fonts)))]), 44)
    if not _renders(font, text):
      text = "".join(rng.choice(list(FALLBACK), len(text)))
    draw.text((32, 32), text, fill=255, font=font, anchor="mm",
              stroke_width=int(rng.integers(0, 3)), stroke_fill=255)
  return draw_letters


def _renders(font: ImageFont.FreeTypeFont, text: str) -> bool:
  # A glyph the font lacks comes out as its "missing" box, which reads as a 0.
  missing = font.getmask("\ufffe").getbbox()
  return all(font.getmask(c).getbbox() not in (None, missing) for c in text)


def _warp(rng: np.random.Generator, ink: np.ndarray, heavy: bool) -> np.ndarray:
  im = Image.fromarray(np.clip(ink, 0, 255).astype(np.uint8))
  angle = rng.uniform(-180, 180) if heavy else rng.uniform(-20, 20)
  sx, sy = np.exp(rng.uniform(-0.3, 0.3, 2))
  shear = rng.uniform(-0.3, 0.3)
  c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
  m = np.array([[c * sx, -s * sy + shear, 0], [s * sx, c * sy, 0]])
  inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
  centre = np.array([CANVAS / 2, CANVAS / 2])
  inv[:, 2] = centre - inv[:, :2] @ centre
  im = im.transform(im.size, Image.Transform.AFFINE, tuple(inv.ravel()),
                    Image.Resampling.BILINEAR)
  if rng.random() < 0.5:
    im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
  return np.asarray(im, np.float32)


def generate(n: int, seed: int, split: str = "train", families: tuple[str, ...] = FAMILIES,
             unseen_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """``n`` non-digits of ``split``: uint8 [n, 28, 28, 1] bright ink on black, and each one's
  family (an index into ``families``, drawn in turn so the families are balanced).
  ``unseen_only`` (heldout): only what the other splits never draw (``UNSEEN`` kinds, and
  letters in the held-out fonts).

  The same arguments always give the same images (on one machine: heldout letters also use
  its system fonts).
  """
  if split not in SPLITS:
    raise ValueError(f"split {split!r}: not one of {', '.join(SPLITS)}")
  rng = _seed(seed, split)
  makers = {"letters": (_letters(rng, split),) if "letters" in families else (),
            "shapes": SHAPES, "scribbles": SCRIBBLES, "noise": NOISE}
  for name, unseen in UNSEEN.items():
    seen = tuple(m for m in makers[name] if m is not unseen)
    makers[name] = seen + (unseen,) * (len(seen) // 2) if split == "heldout" else seen
    if unseen_only and split == "heldout":
      makers[name] = (unseen,)
  images = np.zeros((n, 28, 28, 1), np.uint8)
  family = np.arange(n) % len(families)
  for k in range(n):
    name = families[family[k]]
    images[k, ..., 0] = _one(rng, makers[name], heavy=name != "letters")
  return images, family.astype(np.int32)


def _one(rng: np.random.Generator, makers: tuple[Callable, ...], heavy: bool) -> np.ndarray:
  for _ in range(20):  # a warp can push everything off the canvas, or leave a bar: again
    im, draw = _canvas()
    drawn = makers[int(rng.integers(len(makers)))](rng, draw, int(rng.integers(2, 10)))
    ink = _warp(rng, drawn if drawn is not None else np.asarray(im, np.float32), heavy)
    if ink.max() > 32:
      image = mnist_style(ink)
      if not _bar_like(image):
        return image
  raise RuntimeError("could not draw a non-digit in 20 tries")


def _bar_like(image: np.ndarray) -> bool:
  """Ink spread along one direction only: a stroke or sliver a reader would take for a 1."""
  ys, xs = np.nonzero(image > 64)
  if len(ys) < 3:
    return True
  spread = np.linalg.eigvalsh(np.cov(np.stack([ys, xs]).astype(np.float64)))
  return bool(spread[0] < (0.35 ** 2) * spread[1])
