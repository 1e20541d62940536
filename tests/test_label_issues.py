"""Label issues: flipped labels rank first, raw rows map back exactly, K-fold scores stay
out of sample; data.label_fixes removes or relabels exactly the listed raw train rows."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from jaxdigits import config as config_lib
from jaxdigits.analysis import crossval
from jaxdigits.analysis import label_issues as li
from jaxdigits.data import Split, load_tfds, raw
from jaxdigits.data import label_fixes, pipeline
from jaxdigits.data import sources as sources_lib
from jaxdigits.errors import ConfigError, DataError

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
  got = sources_lib.source_indices(raw_images[shuffled], raw_labels[shuffled], raw_images,
                                   raw_labels)
  assert got.tolist() == [1, 4, 3, 0, 2]
  with pytest.raises(DataError, match="not in the raw file"):
    sources_lib.source_indices(raw_images[:1] + 1, raw_labels[:1], raw_images, raw_labels)


@pytest.mark.parametrize("dataset", ["mnist", "usps"])
def test_source_index_maps_back_to_the_raw_file(dataset, raw_dir, tfds_dir):
  sources = sources_lib.split_source_indices(dataset, "test", raw_dir=str(raw_dir),
                                             data_dir=str(tfds_dir))
  raw_images, raw_labels = raw.load_split(dataset, "test", raw.local_paths(dataset, raw_dir))
  prepared = load_tfds(dataset, "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir))
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
  test = load_tfds("mnist", "test", **kw)
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


def _fix_file(path, rows):
  """A label_issues.csv of (source_index, given, suggested) rows."""
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(li.COLUMNS)
    writer.writerows([r + 1, s, g, t, "0.01"] for r, (s, g, t) in enumerate(rows))
  return str(path)


@pytest.mark.parametrize("content, match", [
    (None, "is not a file"),
    ("rank,index,given,suggested,score\n1,5,3,8,0.1\n", r"missing \['source_index'\]"),
    ("rank,source_index,given,suggested,score\n1,x,3,8,0.1\n", "line 2: source_index 'x'"),
    ("rank,source_index,given,suggested,score\n1,60000,3,8,0.1\n", "source_index 60000 is "
     "outside"),
    ("rank,source_index,given,suggested,score\n1,5,3,10,0.1\n", "labels must be digits"),
    ("rank,source_index,given,suggested,score\n1,5,3,8,0.1\n2,5,3,7,0.2\n", "row 5 more than"),
    ("rank,source_index,given,suggested,score\n1,5,3\n", "line 2 has 3 cells"),
])
def test_label_fixes_file_is_checked_by_validate(tmp_path, content, match):
  path = tmp_path / "fixes.csv"
  if content is not None:
    path.write_text(content)
  config = config_lib.defaults()
  config.data.label_fixes = str(path)
  with pytest.raises(ConfigError, match=r"^config field data\.label_fixes: .*" + match):
    config_lib.validate(config)


def test_label_fix_mode_is_checked():
  config = config_lib.defaults()
  config.data.label_fix_mode = "drop"
  with pytest.raises(ConfigError, match=r"data\.label_fix_mode: unknown mode 'drop'"):
    config_lib.validate(config)
  config.data.label_fix_mode = "relabel"
  del config.data["label_fixes"]  # a config saved before the fields existed still passes
  config_lib.validate(config)


def test_apply_touches_exactly_the_listed_raw_rows(tmp_path):
  rng = np.random.default_rng(0)
  raw_labels = rng.integers(0, 10, 50)
  sources = rng.permutation(50)[:40]  # the training examples' raw rows, shuffled
  images, labels = sources[:, None].astype(np.uint8), raw_labels[sources]
  listed = [(int(sources[3]), 7), (int(sources[20]), 1), (45, 2)]  # row 45: not in training
  if 45 in sources:
    listed.pop()
  rows = [(r, int(raw_labels[r]), t) for r, t in listed]
  fixes = label_fixes.read(_fix_file(tmp_path / "f.csv", rows), 50)
  kept_images, kept, n = label_fixes.apply(images, labels, sources, raw_labels, fixes, "remove")
  assert n["in_train"] == 2 and n["examples_after"] == 38 == len(kept)
  assert sorted(kept_images[:, 0].tolist()) == sorted(set(sources.tolist()) - {
      sources[3], sources[20]})
  same, relabelled, _ = label_fixes.apply(images, labels, sources, raw_labels, fixes, "relabel")
  assert (same == images).all() and relabelled[3] == 7 and relabelled[20] == 1
  changed = np.flatnonzero(relabelled != labels)
  assert set(changed.tolist()) <= {3, 20}
  assert (labels == raw_labels[sources]).all()  # the input is not modified
  wrong = label_fixes.read(_fix_file(tmp_path / "w.csv", [(int(sources[3]),
                                                           (int(labels[3]) + 1) % 10, 0)]), 50)
  with pytest.raises(DataError, match="not a list of this dataset's train split"):
    label_fixes.apply(images, labels, sources, raw_labels, wrong, "remove")


@pytest.fixture
def fake_usps(monkeypatch):
  """USPS-sized generated raw files (7,291 train, 300 test) in a shuffled 'prepared' order,
  behind the pipeline's tfds reader and raw-file reader: load_splits runs as it does on the
  real files, in well under a second."""
  rng = np.random.default_rng(0)
  raw_files = {}
  for split, n in (("train", config_lib.TRAIN_SIZES["usps"]), ("test", 300)):
    images = rng.integers(0, 256, (n, 16, 16), dtype=np.uint8)
    raw_files[split] = (images, rng.integers(0, 10, n), rng.permutation(n))

  def load_tfds(dataset, split, *, start=0, stop=None, **_):
    images, labels, order = raw_files[split]
    rows = order[start:stop]
    return Split(images[rows][..., None], labels[rows].astype(np.int32))

  monkeypatch.setattr(pipeline, "load_tfds", load_tfds)
  monkeypatch.setattr(sources_lib, "raw_split", lambda *_: raw_files["train"][:2])
  return raw_files


@pytest.mark.parametrize("mode", ["remove", "relabel"])
def test_label_fixes_change_only_training_rows(fake_usps, tmp_path, mode):
  config = config_lib.load_file("configs/usps_cnn.py")
  config.data.mnist_style = False
  plain = pipeline.load_splits(config.data)
  cut = len(plain.train)
  _, raw_labels, order = fake_usps["train"]
  picked = [int(order[i]) for i in (0, 17, 2000)] + [int(order[cut + 5])]  # last: validation
  fixes = [(r, int(raw_labels[r]), (int(raw_labels[r]) + 3) % 10) for r in picked]
  config.data.label_fixes = _fix_file(tmp_path / "fixes.csv", fixes)
  config.data.label_fix_mode = mode
  fixed = pipeline.load_splits(config_lib.validate(config).data)
  for split in ("validation", "test"):  # untouched, bit for bit
    np.testing.assert_array_equal(getattr(fixed, split).images, getattr(plain, split).images)
    np.testing.assert_array_equal(getattr(fixed, split).labels, getattr(plain, split).labels)
  if mode == "remove":
    keep = np.ones(cut, bool)
    keep[[0, 17, 2000]] = False
    np.testing.assert_array_equal(fixed.train.images, plain.train.images[keep])
    np.testing.assert_array_equal(fixed.train.labels, plain.train.labels[keep])
  else:
    np.testing.assert_array_equal(fixed.train.images, plain.train.images)
    assert np.flatnonzero(fixed.train.labels != plain.train.labels).tolist() == [0, 17, 2000]
    assert fixed.train.labels[[0, 17, 2000]].tolist() == [t for _, _, t in fixes[:3]]
