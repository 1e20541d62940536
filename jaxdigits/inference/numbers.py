"""Read a whole number: segment the ink into digits, classify each, order them left to right.

The ink (``preprocess.to_ink``: the same decoding, inversion and denoising as one digit) is
cut into connected components; specks are dropped, the pieces of one digit (a 5's detached
bar, a 4 drawn in two strokes, a stroke broken by faint pixels) merged, and ink wide enough
for two digits cut along the seam of least ink, where the model's logits for the pieces and
for the whole decide whether and where to cut. Each digit then goes through ``mnist_style``
exactly as a single-digit image does, so a one-digit drawing reads as a one-digit number.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, Sequence

import numpy as np
from scipy import ndimage

from jaxdigits.data.mnist_style import MNIST_SIZE, mnist_style
from jaxdigits.errors import ConfigError, ImageError
from jaxdigits.inference import contract, preprocess

# Pixels at this share of the brightest ink seed the components; fainter ones (antialiased
# edges, light pen pressure) join the nearest component within _ATTACH digit heights, so that
# a faint gap between two strokes neither breaks one digit nor bridges two.
_STRONG = 0.3
_ATTACH = 0.1
_SPECK = 0.2  # a component smaller than this share of the digit height in both directions
_OVERLAP = 0.5  # share of the narrower x-range two components must share to be one digit
_SMALL = 0.5  # a component under this share of the digit height is a piece of its neighbour
_NEAR = 0.25  # ... if the gap to that neighbour is under this share of the digit height
# One digit or two? The model's softmax is a poor guide (it is as sure of the halves of an 8
# as of a touching pair), its largest logit a better one: high for a whole digit, lower for a
# pair squeezed into one box or for half a digit. Some ink is read as two digits when
# ``_RULES[...] . _features(...) > 0``: logistic fits (benchmarks/fit_number_cuts.py) on
# single digits, digits broken in two, touching and nearly touching pairs composed from MNIST
# train digits the shipped model never trained on (its validation split). "cut" decides
# whether one component holds two digits, "join" whether two neighbouring ones are one digit.
# Predictors whose logits are log-probabilities (ensembles, test-time augmentation, classic
# models) get the rules fitted on the shipped model's log-softmax instead.
_FEATURES = ("pieces", "weaker", "whole", "sure_pieces", "sure_whole", "aspect", "wide",
             "contact", "bias")
_RULES = {
    ("cut", "logits"): (0.7304, 0.2881, -0.58, -0.06861, -0.6179, -1.383, 6.558, -3.087,
                        -9.542),
    ("cut", "probabilities"): (6.04, 4.906, -5.794, 4.906, -5.794, -1.51, 9.648, -4.255,
                               -8.679),
    ("join", "logits"): (0.6839, 0.407, -0.2748, -6.952, -3.682, 1.423, 2.653, 5.502, -11.01),
    ("join", "probabilities"): (23.8, -2.797, -3.902, -2.797, -3.902, 2.041, 4.226, 3.755,
                                -3.563),
}
_MIN_CUT_ASPECT = 0.7  # narrower ink is one digit: half of all digits, 3% of touching pairs
_JOIN_GAP = 0.2  # neighbours this close (share of the digit height) may be one digit
_CUTS = tuple(np.arange(0.15, 0.86, 0.05))  # centres of the bands a seam may start in
_REACH = 0.25  # how far (share of the width) a seam may wander from where it starts
_STEP = 1  # columns a seam may move per row
_SIDEWAYS = 0.02  # the cost of a sideways step, in pixels of full ink
_MIN_PIECE = 0.1  # a cut leaving a piece with less of the ink than this is no cut


class Classifier(Protocol):
  """Anything that reads MNIST-style digits: any Predictor (Flax, classic, ensemble, TTA).

  Its ``logits(images)`` are used where it has them (see _RULES), else the log of these.
  """

  def probabilities(self, images: np.ndarray) -> np.ndarray:
    """Class probabilities [N, 10] for uint8 images [N, 28, 28, 1]."""


@dataclasses.dataclass(frozen=True)
class DigitReading:
  digit: int
  probability: float
  box: tuple[int, int, int, int]  # x0, y0, x1, y1 in input pixels, ends exclusive (PIL's crop)

  def to_json(self) -> dict[str, Any]:
    return {"digit": self.digit, "probability": self.probability, "box": list(self.box)}


@dataclasses.dataclass(frozen=True)
class NumberReading:
  file: str
  digits: tuple[DigitReading, ...]
  inputs: np.ndarray  # uint8 [N, 28, 28, 1]: what the model read for each digit
  reason: str | None = None  # why this is not read as a number: no piece looks like a digit

  @property
  def number(self) -> str | None:
    if self.reason is not None:
      return None
    return "".join(str(d.digit) for d in self.digits)

  def to_json(self) -> dict[str, Any]:
    row = {"file": self.file, "number": self.number,
           "digits": [d.to_json() for d in self.digits]}
    return row if self.reason is None else {**row, "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class _Blob:
  """Some ink: the coordinates of its pixels in the input."""

  rows: np.ndarray
  cols: np.ndarray

  @property
  def box(self) -> tuple[int, int, int, int]:
    return (int(self.cols.min()), int(self.rows.min()), int(self.cols.max()) + 1,
            int(self.rows.max()) + 1)

  @property
  def width(self) -> int:
    return int(self.cols.max() - self.cols.min()) + 1

  @property
  def height(self) -> int:
    return int(self.rows.max() - self.rows.min()) + 1

  def image(self, ink: np.ndarray) -> np.ndarray:
    """Its ink alone in its box: a neighbour's strokes inside the box stay out."""
    x0, y0, x1, y1 = self.box
    out = np.zeros((y1 - y0, x1 - x0), np.float32)
    out[self.rows - y0, self.cols - x0] = ink[self.rows, self.cols]
    return out

  def __add__(self, other: _Blob) -> _Blob:
    return _Blob(np.concatenate([self.rows, other.rows]), np.concatenate([self.cols, other.cols]))


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
  order = np.argsort(values)
  cumulative = np.cumsum(weights[order])
  return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def _components(ink: np.ndarray) -> tuple[list[_Blob], float]:
  """The connected components of the ink, and the typical digit height.

  The height is the median component height weighted by ink, so that a 5's detached bar or a
  speck does not halve it.
  """
  labels, count = ndimage.label(ink >= _STRONG * ink.max(), np.ones((3, 3), bool))
  sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
  heights = np.array([rows.stop - rows.start for rows, _ in ndimage.find_objects(labels)])
  height = _weighted_median(heights, sizes)
  distance, (near_r, near_c) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
  faint = (ink > 0) & (labels == 0) & (distance <= max(1.5, _ATTACH * height))
  labels[faint] = labels[near_r[faint], near_c[faint]]
  rows, cols = np.nonzero(labels)
  order = np.argsort(labels[rows, cols], kind="stable")
  rows, cols = rows[order], cols[order]
  ends = np.cumsum(np.bincount(labels[rows, cols], minlength=count + 1)[1:])[:-1]
  return [_Blob(r, c) for r, c in zip(np.split(rows, ends), np.split(cols, ends))], height


def _x_overlap(a: _Blob, b: _Blob) -> float:
  (ax0, _, ax1, _), (bx0, _, bx1, _) = a.box, b.box
  return (min(ax1, bx1) - max(ax0, bx0)) / min(a.width, b.width)


def _gap(a: _Blob, b: _Blob) -> int:
  (ax0, _, ax1, _), (bx0, _, bx1, _) = a.box, b.box
  return max(bx0 - ax1, ax0 - bx1, 0)


def _merge(blobs: list[_Blob], height: float) -> list[_Blob]:
  """Joins the pieces of one digit: strongly overlapping x-ranges, or a small piece next to
  (above, below, or just beside) a neighbour."""
  blobs = sorted(blobs, key=lambda b: b.box[0])
  merged = True
  while merged:
    merged = False
    for i, a in enumerate(blobs):
      for j in range(i + 1, len(blobs)):
        if _x_overlap(a, blobs[j]) >= _OVERLAP:
          blobs[i], merged = a + blobs.pop(j), True
          break
      if merged:
        break
    if merged or len(blobs) < 2:
      continue
    for i, a in enumerate(blobs):
      if a.height < _SMALL * height:
        j = min((j for j in range(len(blobs)) if j != i), key=lambda j: _gap(a, blobs[j]))
        if _gap(a, blobs[j]) <= _NEAR * height:
          blobs[min(i, j)], merged = a + blobs[j], True
          blobs.pop(max(i, j))
          break
  return blobs


def _seam(image: np.ndarray, start: tuple[int, int], corridor: tuple[int, int]) -> np.ndarray:
  """The top-to-bottom path of least ink that starts in columns [start) and stays in
  [corridor), moving at most ``_STEP`` columns per row: its column in each row."""
  lo, hi = corridor
  band = image[:, lo:hi]
  cost = np.full(hi - lo, np.inf)
  cost[start[0] - lo:start[1] - lo] = band[0, start[0] - lo:start[1] - lo]
  steps = np.zeros(band.shape, np.int8)
  columns = np.arange(hi - lo)
  shifts = np.arange(-_STEP, _STEP + 1)
  for r in range(1, band.shape[0]):
    # Sideways steps cost a little, so the seam runs straight through empty paper and only
    # slants to follow a gap between slanted or overlapping digits.
    choices = np.stack([_shifted(cost, s) + _SIDEWAYS * abs(s) for s in shifts])
    best = np.argmin(choices, 0)
    steps[r] = shifts[best]
    cost = band[r] + choices[best, columns]
  path = np.empty(band.shape[0], np.int64)
  path[-1] = int(np.argmin(cost))
  for r in range(band.shape[0] - 1, 0, -1):
    path[r - 1] = path[r] + steps[r, path[r]]
  return path + lo


def _shifted(cost: np.ndarray, shift: int) -> np.ndarray:
  """cost[c + shift] at each column c: the cost of arriving from ``shift`` columns away."""
  if shift == 0:
    return cost
  pad = np.full(abs(shift), np.inf)
  return np.concatenate([cost[shift:], pad]) if shift > 0 else np.concatenate([pad, cost[:shift]])


def _cuts(blob: _Blob, ink: np.ndarray) -> list[tuple[_Blob, _Blob]]:
  """Candidate splits of a blob into a left and a right digit, one per seam start."""
  image = blob.image(ink)
  image /= image.max()
  x0, y0 = blob.box[:2]
  width = image.shape[1]
  half, reach = max(1, round(0.05 * width)), max(2, round(_REACH * width))
  out, seen = [], set()
  for centre in _CUTS:
    c = round(centre * width)
    seam = _seam(image, (max(1, c - half), min(width - 1, c + half + 1)),
                 (max(1, c - reach), min(width - 1, c + reach + 1)))
    left = blob.cols - x0 < seam[blob.rows - y0]
    key = left.tobytes()
    if key in seen or not _MIN_PIECE < left.mean() < 1 - _MIN_PIECE:
      continue
    seen.add(key)
    out.append((_Blob(blob.rows[left], blob.cols[left]),
                _Blob(blob.rows[~left], blob.cols[~left])))
  return out


def _logits(model: Classifier, inputs: np.ndarray) -> np.ndarray:
  # A power-of-two batch: a jitted model compiles a handful of shapes, not one per count.
  size = max(8, 1 << (len(inputs) - 1).bit_length())
  padded = np.zeros((size, *inputs.shape[1:]), np.uint8)
  padded[:len(inputs)] = inputs
  if hasattr(model, "logits"):
    return np.asarray(model.logits(padded), np.float32)[:len(inputs)]
  return np.log(np.asarray(model.probabilities(padded), np.float32)[:len(inputs)] + 1e-9)


def _contact(left: _Blob, right: _Blob) -> int:
  """Pixels of ``left`` beside a pixel of ``right``: how much ink a cut between them crosses
  (a touching pair meets at a point, a cut through one digit crosses its strokes)."""
  x0, y0, x1, y1 = (left + right).box
  mask = np.zeros((y1 - y0 + 2, x1 - x0 + 2), bool)
  mask[right.rows - y0 + 1, right.cols - x0 + 1] = True
  near = ndimage.binary_dilation(mask, np.ones((3, 3), bool))
  return int(near[left.rows - y0 + 1, left.cols - x0 + 1].sum())


class _Reader:
  """Classifies blobs of one image, caching the model's logits per blob."""

  def __init__(self, model: Classifier, ink: np.ndarray, height: float):
    self.model, self.ink, self.height = model, ink, height
    self.cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
    self.kind: str | None = None  # "logits" or "probabilities", set by the first answer

  def _key(self, blob: _Blob) -> bytes:
    return np.sort(blob.rows * self.ink.shape[1] + blob.cols).tobytes()

  def classify(self, blobs: Sequence[_Blob]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(MNIST-style input [28,28,1], logits [10]) for each blob, in one model call."""
    todo = {self._key(b): b for b in blobs if self._key(b) not in self.cache}
    if todo:
      inputs = np.stack([mnist_style(b.image(self.ink))[..., None] for b in todo.values()])
      logits = _logits(self.model, inputs)
      if self.kind is None:
        log_probabilities = np.allclose(np.log(np.exp(logits).sum(-1)), 0, atol=1e-3)
        self.kind = "probabilities" if log_probabilities else "logits"
      for key, x, z in zip(todo, inputs, logits):
        self.cache[key] = (x, z)
    return [self.cache[self._key(b)] for b in blobs]

  def features(self, whole: _Blob, left: _Blob, right: _Blob) -> np.ndarray:
    """What the rules weigh (``_FEATURES``) to read ``whole`` as one digit or two."""
    logits = np.stack([z for _, z in self.classify([whole, left, right])]).astype(np.float64)
    top = logits.max(-1)
    sure = -np.log(np.exp(logits - top[:, None]).sum(-1))  # the top log-probability
    return np.array([(top[1] + top[2]) / 2, min(top[1], top[2]), top[0],
                     min(sure[1], sure[2]), sure[0], whole.width / whole.height,
                     whole.width / self.height, _contact(left, right) / whole.height, 1.0])

  def two(self, rule: str, whole: _Blob, left: _Blob, right: _Blob) -> bool:
    """Whether the model reads ``whole`` better as the two digits ``left`` and ``right``."""
    weights = _RULES[(rule, self.kind or "logits")]
    features = self.features(whole, left, right)
    return float(np.dot(weights, features)) > 0

  def join(self, groups: list[_Blob]) -> tuple[list[_Blob], list[bool]]:
    """Joins neighbours that overlap or nearly touch when the model reads them better as one
    (a 4 whose slanted stroke is apart, a digit broken in two side by side); and which of
    the groups are such joins (not to be cut again)."""
    groups = sorted(groups, key=lambda g: g.box[0])
    self.classify([*groups, *(a + b for a, b in zip(groups, groups[1:])
                              if _gap(a, b) <= _JOIN_GAP * self.height)])
    joined = [False] * len(groups)
    i = 0
    while i + 1 < len(groups):
      a, b = groups[i], groups[i + 1]
      union = a + b
      overlap = b.box[0] <= a.box[2]
      if ((overlap and union.width < _MIN_CUT_ASPECT * union.height)
          or (_gap(a, b) <= _JOIN_GAP * self.height and not self.two("join", union, a, b))):
        groups[i:i + 2], joined[i:i + 2] = [union], [True]
      else:
        i += 1
    return groups, joined

  def best_cut(self, blob: _Blob) -> tuple[_Blob, _Blob] | None:
    """The cut whose two pieces the model reads best, if the blob may hold two digits."""
    if blob.width < _MIN_CUT_ASPECT * blob.height:
      return None
    cuts = [(l, r) for l, r in _cuts(blob, self.ink)
            if min(l.height, r.height) >= _SMALL * blob.height]
    if not cuts:
      return None
    read = self.classify([piece for cut in cuts for piece in cut])
    top = [float(z.max()) for _, z in read]
    return cuts[int(np.argmax([top[2 * i] + top[2 * i + 1] for i in range(len(cuts))]))]

  def digits(self, blob: _Blob) -> list[_Blob]:
    """The blob as one digit, or cut where the model reads two digits best, recursively."""
    cut = self.best_cut(blob)
    if cut is None or not self.two("cut", blob, *cut):
      return [blob]
    return [*self.digits(cut[0]), *self.digits(cut[1])]


def segment(model: Classifier, ink: np.ndarray) -> tuple[_Reader, list[_Blob]]:
  """The digits of some ink, left to right, and the reader that holds their logits."""
  blobs, height = _components(ink)
  blobs = _merge([b for b in blobs if max(b.height, b.width) >= _SPECK * height], height)
  reader = _Reader(model, ink, height)
  groups, joined = reader.join(blobs)
  digits = [d for g, j in zip(groups, joined) for d in ([g] if j else reader.digits(g))]
  return reader, sorted(digits, key=lambda d: (d.box[0] + d.box[2]) / 2)


def read_number(model: Classifier, source: preprocess.ImageSource, name: str | None = None
                ) -> NumberReading:
  """Reads the digits of an image (path, PIL image or array), left to right.

  ``model`` is anything with ``probabilities(uint8 [N, 28, 28, 1]) -> [N, 10]``; a single
  digit reads as a one-digit number. ``name`` is the reading's ``file`` (default: the path).

  Raises:
    ImageError: missing, unreadable, corrupt or blank image; the message names the source.
    ConfigError: the model reads images other than 28x28 MNIST-style ones.
  """
  shape = getattr(model, "input_shape", (MNIST_SIZE, MNIST_SIZE))
  if tuple(shape[:2]) != (MNIST_SIZE, MNIST_SIZE):
    raise ConfigError(f"this model reads {shape[0]}x{shape[1]} images, not MNIST-style 28x28 "
                      f"digits; read numbers with a model trained with "
                      f"--config.data.mnist_style=True")
  reader, digits = segment(model, preprocess.to_ink(source))
  inputs, logits = zip(*reader.classify(digits))
  probs = contract.softmax(np.stack(logits))
  inputs = np.stack(inputs)
  return NumberReading(
      name or preprocess.source_name(source),
      tuple(DigitReading(int(p.argmax()), float(p.max()), d.box) for d, p in zip(digits, probs)),
      inputs, _not_a_number(model, inputs, digits))


def _not_a_number(model: Classifier, inputs: np.ndarray, digits: Sequence[_Blob]) -> str | None:
  # Only when every piece is refused (a scribble, letters, a shape): the detector is
  # calibrated on whole digits, and refusing on any one cut or merged piece refused 37 of 500
  # composed numbers, 21 of them read right (docs/results.md, Reading whole numbers).
  reasons = model.not_digit(inputs) if hasattr(model, "not_digit") else [None]
  if any(r is None for r in reasons):
    return None
  return (reasons[0] if len(digits) == 1 else
          f"none of its {len(digits)} pieces looks like a digit ({reasons[0]})")
