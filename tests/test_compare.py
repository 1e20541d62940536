"""compare on a small subset: the levels each entry reaches, its table and CSV carry the
measured numbers, and the plot draws them."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from jaxdigits.analysis import compare

ENTRIES = ["logistic_pixels", "knn_hog", "linear_svm_hog"]
# Measured (2-core CPU, 2,000 training digits, one epoch for the Flax entry): test accuracy
# 41.72%, 93.62%, 89.37%; macro F1 0.382, 0.936, 0.892. Each floor is ~3 points below. One
# epoch of logistic regression is 15 steps of a one-cycle schedule: weak, but above chance.
FLOORS = {"logistic_pixels": (0.39, 0.35), "knn_hog": (0.91, 0.91),
          "linear_svm_hog": (0.86, 0.86)}
BAR_BLUE = (31, 119, 180)  # matplotlib's first colour


def _bar_widths(path) -> list[int]:
  """Widths in pixels of the horizontal bars of a plot, top to bottom."""
  rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
  per_row = (np.abs(rgb - BAR_BLUE).sum(-1) < 30).sum(1)
  widths, bar = [], []
  for count in [*per_row, 0]:
    if count:
      bar.append(count)
    elif bar:
      widths.append(max(bar))
      bar = []
  return widths


@pytest.mark.slow
def test_small_compare_writes_table(raw_dir, tfds_dir, tmp_path, monkeypatch):
  monkeypatch.setenv("JAXDIGITS_RAW_DATA", str(raw_dir))
  monkeypatch.setenv("JAXDIGITS_DATA_DIR", str(tfds_dir))
  rows = compare.compare("mnist", tmp_path, ENTRIES, train_limit=2000, epochs=1)
  assert [r["model"] for r in rows] == ENTRIES
  for row in rows:
    accuracy, f1 = FLOORS[row["model"]]
    assert row["test_accuracy"] >= accuracy and row["macro_f1"] >= f1, row
    # Re-measured from the saved model: the trainer's own test accuracy, to the digit.
    final = json.loads((tmp_path / row["model"] / "metrics.jsonl").read_text()
                       .splitlines()[-1])
    assert row["test_accuracy"] == final["test_accuracy"], (row, final)
  with open(tmp_path / "table.csv", encoding="utf-8") as f:
    saved = list(csv.DictReader(f))
  assert [{k: v if k == "model" else float(v) for k, v in r.items()} for r in saved] == rows
  table = (tmp_path / "table.md").read_text().splitlines()
  assert table[2:] == [f"| {r['model']} | {r['test_accuracy']:.2%} | {r['macro_f1']:.4f} | "
                       f"{r['train_seconds']:.1f} | {r['predict_us_per_image']:.1f} |"
                       for r in rows]
  # The plot: one bar per entry (the first at the bottom), as long as its accuracy above the
  # axis start (5 points below the lowest).
  plot = Image.open(tmp_path / "accuracy.png")
  assert plot.size == (800, 240)
  widths = _bar_widths(tmp_path / "accuracy.png")[::-1]
  accuracies = np.array([100 * r["test_accuracy"] for r in rows])
  lengths = accuracies - (accuracies.min() - 5)
  assert len(widths) == len(rows)
  np.testing.assert_allclose(np.array(widths) / max(widths), lengths / lengths.max(), atol=0.02)
