"""compare on a small subset writes its table, CSV and plot."""

from __future__ import annotations

import csv

from jaxdigits.analysis import compare


def test_small_compare_writes_table(raw_dir, tfds_dir, tmp_path, monkeypatch):
  monkeypatch.setenv("JAXDIGITS_RAW_DATA", str(raw_dir))
  monkeypatch.setenv("JAXDIGITS_DATA_DIR", str(tfds_dir))
  rows = compare.compare("mnist", tmp_path, ["logistic_pixels", "knn_hog", "linear_svm_hog"],
                         train_limit=2000, epochs=1)
  assert [r["model"] for r in rows] == ["logistic_pixels", "knn_hog", "linear_svm_hog"]
  # One epoch of logistic regression on 2,000 digits is weak; chance is 0.10.
  assert all(r["test_accuracy"] > 0.3 and r["macro_f1"] > 0.2 for r in rows), rows
  assert rows[1]["test_accuracy"] > 0.85, rows
  with open(tmp_path / "table.csv", encoding="utf-8") as f:
    assert len(list(csv.DictReader(f))) == 3
  assert "| knn_hog |" in (tmp_path / "table.md").read_text()
  assert (tmp_path / "accuracy.png").stat().st_size > 1000
