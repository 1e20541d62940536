"""Prediction on new images: user-like drawings, the CLI, and every kind of bad input."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import jaxdigits
from conftest import REPO
from jaxdigits.cli import predict as predict_cli
from jaxdigits.data import load_tfds
from jaxdigits.inference import preprocess
from jaxdigits.inference.predictor import Prediction


@pytest.fixture(scope="module")
def workdir(tiny_run):
  return tiny_run("mnist")


@pytest.fixture(scope="module")
def predictor(workdir):
  return jaxdigits.load(workdir)


@pytest.fixture(scope="module")
def test_digits(raw_dir, tfds_dir):
  return load_tfds("mnist", "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir), stop=300)


def draw_on_canvas(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
  """A test digit as a user would draw it: dark ink, scaled up, somewhere on light paper."""
  scale = rng.uniform(3, 9)
  size = int(28 * scale)
  ink = Image.fromarray(digit[..., 0]).resize((size, size), Image.Resampling.BILINEAR)
  w, h = 600, 450
  paper = rng.integers(215, 256)
  canvas = np.full((h, w), paper, np.float32)
  top, left = rng.integers(0, h - size), rng.integers(0, w - size)
  canvas[top:top + size, left:left + size] -= np.asarray(ink, np.float32) * (paper / 255)
  canvas += rng.normal(0, 3, canvas.shape)  # paper grain
  grey = np.clip(canvas, 0, 255).astype(np.uint8)
  return Image.fromarray(grey).convert(rng.choice(["L", "RGB", "RGBA"]))


def test_drawn_digits_on_large_canvas_are_recognised(predictor, test_digits):
  rng = np.random.default_rng(0)
  drawings = [draw_on_canvas(d, rng) for d in test_digits.images]
  results = predictor.predict(drawings)
  assert all(isinstance(r, Prediction) for r in results)
  correct = np.mean([r.digit == y for r, y in zip(results, test_digits.labels)])
  assert correct >= 0.95, correct


def test_dark_on_light_and_light_on_dark_give_the_same_input(test_digits):
  digit = test_digits.images[0]
  bright_on_black = preprocess.to_mnist_style(digit)
  dark_on_white = preprocess.to_mnist_style(255 - digit[..., 0])
  np.testing.assert_array_equal(bright_on_black, dark_on_white)
  assert bright_on_black.shape == (28, 28, 1) and bright_on_black.dtype == np.uint8
  # MNIST digits already sit in a 20x20 box centred by mass, so preprocessing gives them back
  # up to a shift of at most one pixel (MNIST's centre of mass is near 14.0, ours 13.5).
  shifted = min(np.abs(np.roll(bright_on_black.astype(int), (dy, dx), (0, 1)) - digit).mean()
                for dy in (-1, 0, 1) for dx in (-1, 0, 1))
  assert shifted < 1.0  # of 255 grey levels, on average over the pixels


def test_transparent_background_is_flattened_on_white(test_digits):
  digit = test_digits.images[1][..., 0]
  rgba = np.zeros((*digit.shape, 4), np.uint8)
  rgba[..., 3] = digit  # black ink whose alpha is the stroke, on a transparent sheet
  np.testing.assert_array_equal(preprocess.to_mnist_style(rgba),
                                preprocess.to_mnist_style(255 - digit))


def _files(tmp_path, test_digits):
  rng = np.random.default_rng(1)
  good = tmp_path / "seven.png"
  draw_on_canvas(test_digits.images[0], rng).save(good)
  jpeg = tmp_path / "two.jpg"
  draw_on_canvas(test_digits.images[1], rng).convert("RGB").save(jpeg, quality=85)
  text = tmp_path / "notes.png"
  text.write_text("not an image\n")
  buf = io.BytesIO()
  draw_on_canvas(test_digits.images[2], rng).save(buf, format="PNG")
  corrupt = tmp_path / "cut.png"
  corrupt.write_bytes(buf.getvalue()[:len(buf.getvalue()) // 2])
  blank = tmp_path / "blank.png"
  Image.new("L", (200, 200), 250).save(blank)
  missing = tmp_path / "missing.png"
  return [good, text, jpeg, missing, corrupt, blank], {
      text: "not an image", missing: "no such file", corrupt: "corrupt", blank: "blank"}


def test_cli_predicts_good_files_and_names_each_bad_one(workdir, test_digits, tmp_path):
  files, bad = _files(tmp_path, test_digits)
  proc = subprocess.Popen(
      [sys.executable, "-m", "jaxdigits.predict", f"--checkpoint={workdir}", "--json",
       *map(str, files)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      start_new_session=True)
  try:
    out, err = proc.communicate(timeout=180)
  except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)  # a hung JAX process ignores SIGTERM
    raise
  assert proc.returncode == 1, err  # some files failed
  rows = json.loads(out)
  assert [r["file"] for r in rows] == list(map(str, files))  # one row per file, in order
  assert {r["file"] for r in rows if set(r) == {"file", "error"}} == set(map(str, bad))
  predictions = [r for r in rows if "error" not in r]
  assert [p["file"] for p in predictions] == [str(files[0]), str(files[2])]
  labels = test_digits.labels
  assert [p["digit"] for p in predictions] == [labels[0], labels[1]]
  for p in predictions:
    assert set(p) == {"file", "digit", "probability", "top3"}
    assert p["top3"][0] == {"digit": p["digit"], "probability": p["probability"]}
    assert [t["probability"] for t in p["top3"]] == sorted(
        (t["probability"] for t in p["top3"]), reverse=True)
  lines = [l for l in err.splitlines() if l.startswith("jaxdigits.predict: error:")]
  assert len(lines) == len(bad), err
  for path, reason in bad.items():
    assert sum(str(path) in l and reason in l for l in lines) == 1, (path, reason, lines)


def test_text_output_and_exit_code_zero_when_all_succeed(workdir, test_digits, tmp_path, capsys):
  files, _ = _files(tmp_path, test_digits)
  assert predict_cli.main([f"--checkpoint={workdir}", str(files[0])]) == 0
  line, = capsys.readouterr().out.splitlines()
  assert line.startswith(f"{files[0]}: {test_digits.labels[0]} (p=") and "top3" in line


def test_cli_tta_predicts_the_same_digits(workdir, test_digits, tmp_path, capsys):
  files, _ = _files(tmp_path, test_digits)
  good = [str(files[0]), str(files[2])]
  assert predict_cli.main([f"--checkpoint={workdir}", "--json", "--tta", *good]) == 0
  tta = json.loads(capsys.readouterr().out)
  assert [p["digit"] for p in tta] == list(test_digits.labels[:2])


def test_missing_checkpoint_is_one_line_error(tmp_path, capsys):
  assert predict_cli.main([f"--checkpoint={tmp_path / 'nope'}", "x.png"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "nope" in err[0]


def test_noisy_paper_does_not_shrink_the_digit(test_digits):
  # Grain with sigma 4 on a 600x450 sheet has a few pixels 16+ levels off; a crop that
  # kept them would shrink the digit to a corner of the 20x20 box.
  digit = np.asarray(Image.fromarray(255 - test_digits.images[0][..., 0]).resize((150, 150)))
  clean = np.full((450, 600), 255.0)
  clean[100:250, 300:450] = digit
  noisy = clean + np.random.default_rng(0).normal(0, 4, clean.shape)
  assert (np.abs(noisy - clean) > 16).sum() >= 1
  a = preprocess.to_mnist_style(clean.astype(np.uint8)).astype(int)
  b = preprocess.to_mnist_style(np.clip(noisy, 0, 255).astype(np.uint8)).astype(int)
  assert np.abs(a - b).mean() < 5


def test_cli_predicts_with_a_classic_run_an_ensemble_and_the_shipped_bundle(
    workdir, tiny_knn_run, test_digits, tmp_path, capsys):
  files, _ = _files(tmp_path, test_digits)
  good = [str(files[0]), str(files[2])]
  knn = tiny_knn_run("mnist")
  for checkpoint in ([f"--checkpoint={knn}"], [f"--checkpoint={knn},{workdir}"],
                     [f"--checkpoint={knn}", f"--checkpoint={workdir}", "--tta"],
                     []):  # []: the shipped CNN
    assert predict_cli.main([*checkpoint, "--json", *good]) == 0
    predictions = json.loads(capsys.readouterr().out)
    assert [p["digit"] for p in predictions] == list(test_digits.labels[:2]), checkpoint


def test_an_ensemble_of_two_runs_predicts_drawn_digits(workdir, tiny_run, test_digits):
  ensemble = jaxdigits.load([workdir, tiny_run("usps")])
  rng = np.random.default_rng(2)
  drawings = [draw_on_canvas(d, rng) for d in test_digits.images[:100]]
  results = ensemble.predict(drawings, names=[f"d{i}" for i in range(100)])
  assert [r.file for r in results] == [f"d{i}" for i in range(100)]
  assert np.mean([r.digit == y for r, y in zip(results, test_digits.labels)]) >= 0.9


def _side_by_side(digits: list[np.ndarray], gap: int = 12) -> tuple[np.ndarray, list[int]]:
  """MNIST digits [28,28,1] in a row, dark on white, and the x where each one's 28 columns start."""
  starts = [gap + i * (28 + gap) for i in range(len(digits))]
  canvas = np.zeros((28 + 2 * gap, starts[-1] + 28 + gap), np.uint8)
  for x, digit in zip(starts, digits):
    canvas[gap:gap + 28, x:x + 28] = digit[..., 0]
  return 255 - canvas, starts


def test_cli_reads_a_number_with_a_box_per_digit(test_digits, tmp_path, capsys):
  canvas, starts = _side_by_side(list(test_digits.images[:3]))
  path = tmp_path / "number.png"
  Image.fromarray(canvas).save(path)
  missing = tmp_path / "missing.png"
  # The shipped CNN: these tests are about the command, not about a tiny run's accuracy.
  assert predict_cli.main(["--number", "--json", str(path), str(missing)]) == 1
  out = capsys.readouterr()
  reading, gone = json.loads(out.out)
  assert gone["file"] == str(missing) and "no such file" in gone["error"]
  assert reading["file"] == str(path)
  assert reading["number"] == "".join(map(str, test_digits.labels[:3]))
  assert [d["digit"] for d in reading["digits"]] == list(test_digits.labels[:3])
  for d, x in zip(reading["digits"], starts):
    x0, y0, x1, y1 = d["box"]
    assert x <= x0 < x1 <= x + 28 and 12 <= y0 < y1 <= 12 + 28, (d, x)  # inside its slot
    assert 0.5 < d["probability"] <= 1
  error, = out.err.strip().splitlines()
  assert error.startswith("jaxdigits.predict: error:") and str(missing) in error
  assert "no such file" in error
  # Text output: one line per file; a single digit is a one-digit number.
  one = tmp_path / "one.png"
  Image.fromarray(255 - test_digits.images[0][..., 0]).resize((112, 112)).save(one)
  assert predict_cli.main(["--number", str(path), str(one)]) == 0
  number_line, digit_line = capsys.readouterr().out.splitlines()
  assert number_line.startswith(f"{path}: {reading['number']}  ({test_digits.labels[0]} p=")
  assert digit_line.startswith(f"{one}: {test_digits.labels[0]}  (")
