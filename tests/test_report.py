"""report.md from measured results: every section, figure and number traced to an evaluation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

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


def test_report_has_every_section_and_its_figures_exist(written):
  mnist, _, text = written
  for heading in ("Data", "Model and training", "Test results", "Confusion matrix",
                  "Typical errors", "Calibration", "Cross-dataset", "Limitations",
                  "Applications"):
    assert f"\n## {heading}\n" in text, heading
  figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
  assert {Path(f).name for f in figures} == {"confusion_matrix.png", "misclassified.png",
                                             "reliability.png"}
  assert all((mnist / f).is_file() for f in figures)
  for application in ("Postal codes", "Bank cheques", "Forms"):
    assert application in text


def test_report_numbers_come_from_the_evaluations(written):
  mnist, usps, text = written
  own = _metrics(mnist, "mnist")
  assert f"Accuracy **{100 * own['accuracy']:.2f}%** on 10000 test digits" in text
  for p in own["confused_pairs"][:3]:
    assert f"{p['true']} read as {p['predicted']} ({p['count']} times" in text
  assert f"| 3 | {own['per_class']['3']['precision']:.4f} |" in text
  assert "| train | 20000 |" in text  # the tiny run's train_limit, read from metrics.jsonl
  # Both directions of the cross-dataset table, each from its own evaluation.
  usps_on_mnist_model = _metrics(mnist, "usps")["accuracy"]
  mnist_on_usps_model = _metrics(usps, "mnist")["accuracy"]
  assert f"| MNIST | USPS | {100 * usps_on_mnist_model:.2f}% |" in text
  assert f"| USPS | MNIST | {100 * mnist_on_usps_model:.2f}% |" in text
  assert text.count("Domain shift:") == 2


def test_report_without_run_is_one_line_error(tmp_path, capsys):
  assert report_cli.main([f"--workdir={tmp_path / 'nothing'}"]) == 2
  assert len(capsys.readouterr().err.strip().splitlines()) == 1
