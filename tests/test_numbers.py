"""Reading whole numbers: segmentation into digits, their order, boxes and bad input."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

import jaxdigits
from conftest import REPO
from jaxdigits.data import load_tfds
from jaxdigits.errors import ConfigError, ImageError
from jaxdigits.inference import numbers, preprocess


def _composer():
  """benchmarks/read_numbers.py, whose ``compose`` builds the benchmark's numbers."""
  spec = importlib.util.spec_from_file_location("read_numbers",
                                                REPO / "benchmarks" / "read_numbers.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


compose = _composer().compose


@pytest.fixture(scope="module")
def predictor():
  return jaxdigits.load()


@pytest.fixture(scope="module")
def clear_digits(raw_dir, tfds_dir, predictor):
  """{label: [28x28 test digits]} the model reads right with >= 99.9%: these tests are about
  segmentation, so a digit the model misreads on its own must not make them fail."""
  test = load_tfds("mnist", "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir), stop=400)
  probs = predictor.probabilities(test.images)
  sure = (probs.argmax(1) == test.labels) & (probs.max(1) >= 0.999)
  return {d: [im[..., 0] for im, y, s in zip(test.images, test.labels, sure) if y == d and s]
          for d in range(10)}


def _number(clear_digits, digits: str, seed: int, touching: bool = False) -> np.ndarray:
  rng = np.random.default_rng(seed)
  return compose([clear_digits[int(d)][seed % 5] for d in digits], rng, touching)


@pytest.mark.parametrize("digits", ["2026", "31", "907", "48165", "753820", "11"])
def test_composed_numbers_are_read_exactly_left_to_right(predictor, clear_digits, digits):
  canvas = _number(clear_digits, digits, seed=len(digits))
  reading = numbers.read_number(predictor, canvas)
  assert reading.number == digits
  boxes = np.array([d.box for d in reading.digits])
  assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
  assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= canvas.shape[1]).all()
  assert (boxes[:, 3] <= canvas.shape[0]).all()
  assert (np.diff(boxes[:, 0]) > 0).all(), "digits must come left to right"
  for d in reading.digits:  # each box holds ink: the canvas is dark around the digits
    x0, y0, x1, y1 = d.box
    assert canvas[y0:y1, x0:x1].max() > 128
  assert reading.inputs.shape == (len(digits), 28, 28, 1) and reading.inputs.dtype == np.uint8


def test_dark_on_light_rgba_canvas_and_noise_specks_read_the_same(predictor, clear_digits):
  canvas = _number(clear_digits, "5094", seed=3)
  plain = numbers.read_number(predictor, canvas)
  # Gradio's Sketchpad: black strokes on a transparent background.
  rgba = np.zeros((*canvas.shape, 4), np.uint8)
  rgba[..., 3] = canvas
  inverted = numbers.read_number(predictor, 255 - canvas)
  sketch = numbers.read_number(predictor, Image.fromarray(rgba, "RGBA"))
  specked = canvas.copy()
  rng = np.random.default_rng(0)
  for x in rng.integers(0, canvas.shape[1] - 2, 6):  # specks in the margins, far from a digit
    specked[1:3, x:x + 2] = specked[-3:-1, x:x + 2] = 255
  noisy = numbers.read_number(predictor, specked)
  assert plain.number == "5094"
  for other in (inverted, sketch, noisy):
    assert other.number == plain.number
    assert [d.box for d in other.digits] == [d.box for d in plain.digits]


def _five_with_detached_bar() -> Image.Image:
  im = Image.new("L", (200, 220), 255)
  draw = ImageDraw.Draw(im)
  draw.line([(70, 40), (140, 40)], fill=0, width=14)  # the bar, lifted off the stem
  draw.line([(68, 62), (64, 110)], fill=0, width=14)
  draw.arc([(50, 88), (150, 185)], start=200, end=140, fill=0, width=14)
  return im


def _four_in_two_strokes() -> Image.Image:
  im = Image.new("L", (220, 220), 255)
  draw = ImageDraw.Draw(im)
  draw.line([(80, 30), (50, 120), (115, 120)], fill=0, width=14, joint="curve")
  draw.line([(112, 40), (150, 190)], fill=0, width=14)  # slanted, short of the bar's end
  return im


@pytest.mark.parametrize("draw,digit", [(_five_with_detached_bar, 5), (_four_in_two_strokes, 4)])
def test_strokes_of_one_digit_merge(predictor, draw, digit):
  image = draw()
  ink = preprocess.to_ink(image)
  assert len(numbers._components(ink)[0]) == 2  # pylint: disable=protected-access
  reading = numbers.read_number(predictor, image)
  assert reading.number == str(digit)
  assert reading.digits[0].box == (int(np.nonzero(ink.any(0))[0][0]),
                                   int(np.nonzero(ink.any(1))[0][0]),
                                   int(np.nonzero(ink.any(0))[0][-1]) + 1,
                                   int(np.nonzero(ink.any(1))[0][-1]) + 1)


@pytest.mark.parametrize("digits", ["35", "80", "62"])
def test_touching_digits_are_cut_apart(predictor, clear_digits, digits):
  canvas = _number(clear_digits, digits, seed=1, touching=True)
  ink = preprocess.to_ink(canvas)
  components, _ = numbers._components(ink)  # pylint: disable=protected-access
  assert len(components) == 1, "the composed pair must touch"
  assert numbers.read_number(predictor, canvas).number == digits


class _ProbabilitiesOnly:
  """A classifier without logits, as an ensemble or a classic model looks to ``numbers``."""

  def __init__(self, predictor):
    self.predictor = predictor

  def probabilities(self, images):
    return self.predictor.probabilities(images)


@pytest.mark.parametrize("digits", ["35", "80"])
def test_touching_digits_are_cut_by_a_model_without_logits(predictor, clear_digits, digits):
  canvas = _number(clear_digits, digits, seed=1, touching=True)
  assert numbers.read_number(_ProbabilitiesOnly(predictor), canvas).number == digits


def test_single_digit_is_a_one_digit_number_through_todays_preprocessing(predictor,
                                                                        clear_digits):
  rng = np.random.default_rng(0)
  for d in (0, 1, 7):
    canvas = 255 - compose([clear_digits[d][0]], rng, touching=False)
    reading = numbers.read_number(predictor, canvas, name="one.png")
    assert reading.number == str(d)
    np.testing.assert_array_equal(reading.inputs[0], preprocess.to_mnist_style(canvas))
    single = predictor.predict([canvas])[0]
    assert reading.digits[0].probability == pytest.approx(single.probability, abs=1e-5)
    assert reading.to_json()["file"] == "one.png"


def test_json_is_the_documented_record(predictor, clear_digits):
  reading = numbers.read_number(predictor, _number(clear_digits, "42", seed=2))
  record = json.loads(json.dumps(reading.to_json()))
  assert record["file"] == "<ndarray>" and record["number"] == "42"
  assert [d["digit"] for d in record["digits"]] == [4, 2]
  for d in record["digits"]:
    assert set(d) == {"digit", "probability", "box"}
    assert 0.5 < d["probability"] <= 1 and len(d["box"]) == 4


def test_blank_missing_and_wrong_model_are_user_errors(predictor, tmp_path):
  with pytest.raises(ImageError, match="blank"):
    numbers.read_number(predictor, np.full((60, 200), 255, np.uint8))
  with pytest.raises(ImageError, match="nope.png: no such file"):
    numbers.read_number(predictor, tmp_path / "nope.png")

  class Usps16:
    input_shape = (16, 16, 1)

    def probabilities(self, images):
      raise AssertionError("never called")

  with pytest.raises(ConfigError, match="16x16"):
    numbers.read_number(Usps16(), np.zeros((28, 28), np.uint8))


# Real digits taken apart: what ``numbers`` must put back together or cut apart.

_SCALED = _composer()._scaled_ink  # pylint: disable=protected-access


def _on_canvas(ink: np.ndarray, margin: int = 30) -> np.ndarray:
  canvas = np.zeros((ink.shape[0] + 2 * margin, ink.shape[1] + 2 * margin), np.uint8)
  canvas[margin:-margin, margin:-margin] = ink
  return canvas


def _strokes(ink: np.ndarray) -> list:
  return numbers._components(preprocess.to_ink(_on_canvas(ink)))[0]  # pylint: disable=protected-access


def _five_with_its_bar_lifted(five: np.ndarray) -> np.ndarray | None:
  """A real 5, 60 px tall, with three rows of its stem erased below the top bar, so that
  the bar is a stroke of its own (as when it is drawn last); None if no rows do that."""
  ink = _SCALED(five, 60)
  h, w = ink.shape
  for r in range(int(0.15 * h), int(0.45 * h)):
    cut = ink.copy()
    cut[r:r + 3, :w // 2] = 0
    parts = _strokes(cut)
    if len(parts) == 2 and min(p.height for p in parts) < 0.4 * h:
      return cut
  return None


def _four_in_two_strokes_from(four: np.ndarray) -> np.ndarray | None:
  """A real 4, 60 px tall, with three columns erased where its bar meets the upright, so
  that it is two strokes side by side, both taller than half the digit."""
  ink = _SCALED(four, 60)
  h, w = ink.shape
  for c in range(int(0.35 * w), int(0.75 * w)):
    cut = ink.copy()
    cut[:, c:c + 3] = 0
    parts = _strokes(cut)
    if len(parts) == 2 and min(p.height for p in parts) > 0.5 * h:
      return cut
  return None


@pytest.mark.parametrize("digit,take_apart", [(5, _five_with_its_bar_lifted),
                                              (4, _four_in_two_strokes_from)])
def test_real_digits_in_two_strokes_read_as_one(predictor, clear_digits, digit, take_apart):
  broken = [b for b in map(take_apart, clear_digits[digit][:8]) if b is not None]
  assert len(broken) >= 3, "too few digits could be taken apart"
  for ink in broken[:4]:
    canvas = 255 - _on_canvas(ink)  # dark on paper, as drawn
    # The digits read, refused or not: this is about segmentation (the not-a-digit detector
    # refuses some of these pulled-apart 4s; test_ood.py and the scribble test cover it).
    reading = numbers.read_number(predictor, canvas)
    assert "".join(str(d.digit) for d in reading.digits) == str(digit)


@pytest.mark.parametrize("digits", ["51", "17", "74", "09"])
def test_touching_pairs_with_a_narrow_or_overlapping_digit_are_cut(predictor, clear_digits,
                                                                   digits):
  canvases = [c for c in (_number(clear_digits, digits, seed=s, touching=True)
                           for s in range(2, 10))
              if len(numbers._components(preprocess.to_ink(c))[0]) == 1][:2]  # pylint: disable=protected-access
  assert len(canvases) == 2, "the composed pairs must touch"
  for canvas in canvases:
    assert numbers.read_number(predictor, canvas).number == digits


@pytest.mark.parametrize("digits", ["358", "2604", "907"])
def test_runs_of_touching_digits_are_cut_into_each(predictor, clear_digits, digits):
  rng = np.random.default_rng(7)
  canvas = compose([clear_digits[int(d)][1] for d in digits], rng, True, all_touching=True)
  assert len(numbers._components(preprocess.to_ink(canvas))[0]) == 1  # pylint: disable=protected-access
  assert numbers.read_number(predictor, canvas).number == digits


def test_a_scribble_is_no_number_and_one_odd_piece_does_not_refuse_a_number(
    predictor, clear_digits, tmp_path, capsys):
  from jaxdigits.cli import predict as predict_cli  # pylint: disable=g-import-not-at-top
  canvas = _number(clear_digits, "47", seed=3)
  h = canvas.shape[0]
  rng = np.random.default_rng(5)

  def scribble(im, x0):
    points = [(x0 + a * (h - 16), 8 + b * (h - 16)) for a, b in rng.uniform(0, 1, (14, 2))]
    ImageDraw.Draw(im).line(points, fill=255, width=max(3, h // 14))

  # Two scribbles side by side, in the digits' ink and size: no piece is a digit.
  only = Image.fromarray(np.zeros((h, 2 * h + 16), np.uint8))
  scribble(only, 0)
  scribble(only, h + 16)
  reading = numbers.read_number(predictor, np.asarray(only))
  assert reading.number is None and "does not look like a digit" in reading.reason
  only.save(tmp_path / "n.png")
  assert predict_cli.main(["--number", "--json", str(tmp_path / "n.png")]) == 0
  row = json.loads(capsys.readouterr().out)[0]
  assert row["number"] is None and row["reason"] == reading.reason
  # The digits with one scribble beside them are still read (its piece as its best guess).
  mixed = Image.fromarray(np.concatenate([canvas, np.zeros((h, h), np.uint8)], 1))
  scribble(mixed, canvas.shape[1] + 8)
  reading = numbers.read_number(predictor, np.asarray(mixed))
  assert reading.reason is None and reading.number.startswith("47")
