"""Label issues: flipped labels rank first, raw rows map back exactly, K-fold scores stay
out of sample."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from jaxdigits import config as config_lib
from jaxdigits.analysis import crossval
from jaxdigits.analysis import label_issues as li
from jaxdigits.data import Split, raw

FLIPPED = 8


def _digits(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Class c: a bright bar in column band c, with noise; easy, so flips stand out."""
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % 10
  images = rng.integers(0, 60, (n, 28, 28, 1)).astype(np.uint8)
  for i, c in enumerate(labels):
    images[i, 4:24, 4 + 2 * c:6 + 2 * c, 0] = 255
  return images, labels


def _flip(labels: np.ndarray, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(seed)
  which = rng.choice(len(labels), FLIPPED, replace=False)
  noisy = labels.copy()
  noisy[which] = (labels[which] + rng.integers(1, 10, FLIPPED)) % 10
  return noisy, which


def _config():
  config = config_lib.defaults()
  config.model.name, config.model.hidden, config.model.dropout = "mlp", (16,), 0.0
  # 200 examples a pool, 5 steps of 40 an epoch: one compiled program of 5 unrolled steps.
  config.train.num_epochs, config.train.batch_size, config.train.steps_per_call = 6, 40, 5
  config.train.learning_rate, config.progress_bar = 1e-2, False
  return config


def test_kfold_finds_flips_and_never_sees_its_own_fold():
  images, labels = _digits()
  noisy, which = _flip(labels)
  probs, fold, info = crossval.kfold_probabilities(_config(), Split(images, noisy), folds=3)
  assert info["vmapped"] and np.bincount(fold).tolist() == [100, 100, 100]
  np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
  issues = li.find(noisy, probs)
  # cleanlab is conservative (a flip the model reads at p=0.8 may fall under its class
  # threshold), but what it flags is flipped, and the flips hold the lowest scores.
  flagged = {e["index"] for e in issues}
  assert flagged <= set(which.tolist()) and len(flagged) >= FLIPPED - 2
  scores = li.cl_rank.get_label_quality_scores(noisy, probs)
  assert set(np.argsort(scores)[:FLIPPED].tolist()) == set(which.tolist())
  assert [e["suggested"] for e in issues] == [labels[e["index"]] for e in issues]
  # Fold 0's scores come from the model that never saw fold 0: relabelling fold 0 (even to
  # garbage) changes none of them, while the other folds' models, which train on it, change.
  garbage = noisy.copy()
  garbage[fold == 0] = (garbage[fold == 0] + 5) % 10
  again, fold2, _ = crossval.kfold_probabilities(_config(), Split(images, garbage), folds=3)
  assert (fold2 == fold).all()
  np.testing.assert_array_equal(again[fold == 0], probs[fold == 0])
  assert not np.allclose(again[fold != 0], probs[fold != 0])


def test_source_indices_match_duplicates_in_raw_order():
  raw_images = np.zeros((5, 2, 2), np.uint8)
  raw_images[1] = raw_images[3] = 7  # identical images, same label: first to first
  raw_images[4] = 9
  raw_labels = np.array([0, 1, 2, 1, 3])
  shuffled = [3, 4, 1, 0, 2]
  got = li.source_indices(raw_images[shuffled], raw_labels[shuffled], raw_images, raw_labels)
  assert got.tolist() == [1, 4, 3, 0, 2]
  with pytest.raises(li.DataError, match="not in the raw file"):
    li.source_indices(raw_images[:1] + 1, raw_labels[:1], raw_images, raw_labels)


@pytest.mark.parametrize("dataset", ["mnist", "usps"])
def test_source_index_maps_back_to_the_raw_file(dataset, raw_dir, tfds_dir):
  sources = li.split_source_indices(dataset, "test", raw_dir=str(raw_dir),
                                    data_dir=str(tfds_dir))
  raw_images, raw_labels = raw.load_split(dataset, "test", raw.local_paths(dataset, raw_dir))
  prepared = li.load_tfds(dataset, "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir))
  assert sorted(sources.tolist()) == list(range(len(raw_labels)))  # a permutation
  assert (sources != np.arange(len(sources))).mean() > 0.9  # tfds did shuffle
  np.testing.assert_array_equal(raw_images[sources], prepared.images[..., 0])
  np.testing.assert_array_equal(raw_labels[sources], prepared.labels)


def test_write_csv_and_gallery(tmp_path):
  images, labels = _digits(60)
  noisy, _ = _flip(labels)
  probs = np.full((60, 10), 0.01)
  probs[np.arange(60), labels] = 0.91
  issues = li.find(noisy, probs)
  sources = np.arange(60)[::-1]
  summary = li.write(issues, sources, images, tmp_path, "generated")
  rows = list(csv.reader(open(tmp_path / "label_issues.csv")))
  assert tuple(rows[0]) == li.COLUMNS and len(rows) == 1 + len(issues) == 1 + summary["count"]
  assert [int(r[1]) for r in rows[1:]] == [59 - e["index"] for e in issues]
  assert (tmp_path / "label_issues.png").stat().st_size > 10_000


def test_evaluate_writes_label_issues_and_report_shows_them(raw_dir, tfds_dir, tmp_path):
  import jaxdigits  # pylint: disable=g-import-not-at-top
  from jaxdigits.analysis import evaluate, report  # pylint: disable=g-import-not-at-top
  predictor = jaxdigits.load()
  kw = dict(raw_dir=str(raw_dir), data_dir=str(tfds_dir))
  with pytest.raises(evaluate.ConfigError, match="--folds"):
    evaluate.evaluate_run(None, "mnist", "train", predictor=predictor, label_issues=True, **kw)
  test = li.load_tfds("mnist", "test", **kw)
  data = Split(test.images[:500], test.labels[:500].copy())
  data.labels[:3] = (data.labels[:3] + 1) % 10  # three wrong labels the model must contradict
  sources = li.split_source_indices("mnist", "test", stop=500, **kw)
  out = tmp_path / "eval" / "mnist_test"
  result = evaluate.evaluate(predictor, data, out, description={"split": "test"},
                             label_sources=sources, label_filter="predicted_neq_given")
  rows = list(csv.DictReader(open(out / "label_issues.csv")))
  assert len(rows) == result["label_issues"]["count"] >= 3
  assert {int(r["source_index"]) for r in rows[:3]} == set(sources[:3].tolist())
  assert (out / "misclassified.png").stat().st_size > 20_000  # with heat maps beside
  section = "\n".join(report._label_issues(out, tmp_path))  # pylint: disable=protected-access
  assert f"mnist_test**: {len(rows)} suspects" in section
  assert "(eval/mnist_test/label_issues.png)" in section
  assert report._label_issues(tmp_path / "none" / "x", tmp_path) == []  # pylint: disable=protected-access
