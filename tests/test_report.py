"""report.md from measured results: every section, figure and number traced to an evaluation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY
from jaxdigits.cli import report as report_cli
from jaxdigits.analysis import report


@pytest.fixture(scope="module")
def written(tiny_run, raw_dir, tfds_dir):
  mnist, usps = tiny_run("mnist"), tiny_run("usps")
  assert report_cli.main([f"--workdir={mnist}", f"--cross_workdir={usps}",
                      f"--raw_dir={raw_dir}", f"--data_dir={tfds_dir}"]) == 0
  return mnist, usps, (mnist / "report.md").read_text()


def _metrics(workdir: Path, dataset: str) -> dict:
  return json.loads((workdir / "eval" / f"{dataset}_test" / "metrics.json").read_text())


def _records(workdir: Path) -> list[dict]:
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _rgb(path: Path) -> np.ndarray:
  return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _near(rgb: np.ndarray, colour: tuple[int, int, int], tolerance: int = 30) -> int:
  """How many pixels are within ``tolerance`` (summed over channels) of ``colour``."""
  return int((np.abs(rgb - colour).sum(-1) < tolerance).sum())


@pytest.mark.slow  # trains the tiny runs (shared with evaluate and predict)
def test_report_has_every_section_and_its_figures_exist(written):
  mnist, _, text = written
  headings = re.findall(r"^## (.+)$", text, re.M)
  assert headings == ["Data", "Model and training", "Test results", "Confusion matrix",
                      "Typical errors", "Calibration", "Cross-dataset", "Limitations",
                      "Applications"]
  figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
  assert figures == [f"eval/mnist_test/{name}" for name in ("confusion_matrix.png",
                                                            "misclassified.png",
                                                            "reliability.png")]
  for application in ("Postal codes", "Bank cheques", "Forms"):
    assert application in text


@pytest.mark.slow
def test_report_figures_draw_the_evaluation(written):
  mnist, _, _ = written
  folder = mnist / "eval" / "mnist_test"
  errors = _metrics(mnist, "mnist")["worst_errors"]
  sizes = {"confusion_matrix.png": (1500, 650), "reliability.png": (600, 650),
           # A Flax model's errors each have their heat map beside them: twice as wide.
           "misclassified.png": (1920, 190 * -(-len(errors) // 6))}
  for name, size in sizes.items():
    with Image.open(folder / name) as image:
      assert image.size == size, name
  # Confusion matrix: a ~98% model has ten dark-blue diagonal cells (~3,300 pixels each) in
  # both panels, counts and recall, and the other 90 cells near white (Blues' lightest).
  confusion = _rgb(folder / "confusion_matrix.png")
  for panel in (confusion[:, :750], confusion[:, 750:]):
    dark_blue = (panel[..., 0] < 40) & (panel[..., 1] < 130) & (panel[..., 2] > 90)
    assert dark_blue.sum() > 10 * 2000
    assert _near(panel, (247, 251, 255), 10) > 50 * 1000
  # Reliability: the accuracy bars in matplotlib's blue, the mean confidence as red dots.
  reliability = _rgb(folder / "reliability.png")
  assert _near(reliability, (31, 119, 180)) > 20_000 and _near(reliability, (214, 39, 40)) > 50
  # The gallery shows the misclassified digits themselves: black squares with white ink.
  gallery = _rgb(folder / "misclassified.png")
  assert _near(gallery, (0, 0, 0), 3) > 5000 * len(errors)
  assert _near(gallery, (255, 255, 255), 3) > 500 * len(errors)


@pytest.mark.slow
def test_report_numbers_come_from_the_evaluations(written):
  mnist, usps, text = written
  own = _metrics(mnist, "mnist")
  assert (f"Accuracy **{100 * own['accuracy']:.2f}%** on 10000 test digits; macro F1 "
          f"{own['macro']['f1']:.4f}, weighted F1 {own['weighted']['f1']:.4f}.") in text
  for digit, c in own["per_class"].items():
    assert (f"| {digit} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | "
            f"{c['support']} |") in text, digit
  confusion = np.array(own["confusion_matrix"])
  block = text.split("```")[1].strip().splitlines()
  assert [list(map(int, row.split()[1:])) for row in block[1:]] == confusion.tolist()
  assert own["errors"] == 10000 - np.trace(confusion)
  assert f"{own['errors']} of 10000 test digits are misclassified." in text
  for p in own["confused_pairs"][:3]:
    assert (f"{p['true']} read as {p['predicted']} ({p['count']} times, "
            f"{100 * p['share_of_errors']:.2f}% of errors)") in text
  assert (f"Expected calibration error {own['expected_calibration_error']:.4f} ") in text
  assert f"against accuracy {own['accuracy']:.4f}" in text
  assert f"Log loss {own['log_loss']:.4f}." in text
  # The run's own record: split sizes, epochs, the checkpoint served.
  records = _records(mnist)
  epochs, final = [r for r in records if "epoch" in r], records[-1]
  assert (f"| train | {final['train_examples']} |\n| validation | "
          f"{final['validation_examples']} |\n| test | 10000 |") in text
  assert final["train_examples"] == TINY["data.train_limit"]
  best = max(e["val_accuracy"] for e in epochs)
  seconds = sum(e["epoch_seconds"] for e in epochs)
  assert (f"Trained {len(epochs)} epochs in {seconds:.0f} s of training steps; best validation "
          f"accuracy {100 * best:.2f}% at epoch {final['best_epoch']}.") in text
  assert len(epochs) == TINY["train.num_epochs"]
  assert f"| model.features | {list(TINY['model.features'])} |" in text
  assert f"| train.batch_size | {TINY['train.batch_size']} |" in text
  # Both directions of the cross-dataset table, each from its own evaluation.
  home_usps = _metrics(usps, "usps")["accuracy"]
  usps_on_mnist_model = _metrics(mnist, "usps")["accuracy"]
  mnist_on_usps_model = _metrics(usps, "mnist")["accuracy"]
  assert (f"| MNIST | MNIST | {100 * own['accuracy']:.2f}% | in-domain |\n"
          f"| MNIST | USPS | {100 * usps_on_mnist_model:.2f}% | "
          f"{100 * (usps_on_mnist_model - own['accuracy']):+.2f} pts |\n"
          f"| USPS | USPS | {100 * home_usps:.2f}% | in-domain |\n"
          f"| USPS | MNIST | {100 * mnist_on_usps_model:.2f}% | "
          f"{100 * (mnist_on_usps_model - home_usps):+.2f} pts |") in text
  assert (f"trained on MNIST, it drops from {100 * own['accuracy']:.2f}% to "
          f"{100 * usps_on_mnist_model:.2f}% on USPS") in text
  assert text.count("Domain shift:") == 2


def test_report_without_run_is_one_line_error(tmp_path, capsys):
  assert report_cli.main([f"--workdir={tmp_path / 'nothing'}"]) == 2
  assert len(capsys.readouterr().err.strip().splitlines()) == 1
