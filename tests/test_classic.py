"""Classic models: JAX kNN equals scikit-learn's, saved arrays predict like the fitted model."""

from __future__ import annotations

import json

import ml_collections
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC

from jaxdigits import config as config_lib
from jaxdigits.training import classic_fit as classic
from jaxdigits.models import features
from jaxdigits.training import engine as train
from jaxdigits.data import load_tfds
from jaxdigits.models import classic as classic_models
from jaxdigits.models.knn import KNN


@pytest.fixture(scope="module")
def data(raw_dir, tfds_dir):
  kw = dict(raw_dir=str(raw_dir), data_dir=str(tfds_dir))
  return load_tfds("mnist", "train", stop=3000, **kw), load_tfds("mnist", "test", stop=500, **kw)


@pytest.fixture(scope="module")
def pixels(raw_dir, tfds_dir):
  """5,000 training and 500 test images of MNIST, flattened uint8."""
  kw = dict(raw_dir=str(raw_dir), data_dir=str(tfds_dir))
  tr, te = load_tfds("mnist", "train", stop=5000, **kw), load_tfds("mnist", "test", stop=500, **kw)
  return tr.images.reshape(len(tr), -1), tr.labels, te.images.reshape(len(te), -1), te.labels


def brute_neighbours(x, q, k):
  """Reference: exact distances to every point (float64 sums of integers below 2^53 are exact),
  the k smallest by (distance, index)."""
  x, q = x.astype(np.float64), q.astype(np.float64)
  d = (q * q).sum(1)[:, None] + (x * x).sum(1)[None] - 2 * q @ x.T
  return np.array([np.lexsort((np.arange(len(x)), row))[:k] for row in d])


@pytest.mark.parametrize("k", [1, 3, 5])
def test_knn_pixels_equals_sklearn(pixels, k):
  x, y, q, yq = pixels
  knn = KNN(k, x, y, batch_size=200)
  sk = KNeighborsClassifier(k, algorithm="brute").fit(x, y)
  np.testing.assert_array_equal(knn.neighbours(q), sk.kneighbors(q, return_distance=False))
  ours = knn.predict(q)
  np.testing.assert_array_equal(ours, sk.predict(q))
  assert np.mean(ours == yq) > 0.9


def test_knn_exact_ties_go_to_the_lower_index_and_the_smaller_label(pixels):
  """Duplicated images (every distance tied with a later index) and, for 50 queries, a pair of
  training points at the same distance on either side of the query with different labels."""
  x, y, q, _ = pixels
  x, y, q = x[:1000], y[:1000], q[:100]
  rng = np.random.default_rng(0)
  plus, minus = q[:50].astype(np.int16), q[:50].astype(np.int16)
  for i in range(50):
    pixel = rng.choice(np.flatnonzero((q[i] >= 9) & (q[i] <= 246)))
    plus[i, pixel] += 9
    minus[i, pixel] -= 9
  train = np.concatenate([x, minus.astype(np.uint8), x[::-1], plus.astype(np.uint8)])
  labels = np.concatenate([y, np.full(50, 7), y[::-1], np.full(50, 2)]).astype(np.int32)
  ref = brute_neighbours(train, q, 4)
  for k, label in ((1, 7), (2, 2), (4, None)):
    knn = KNN(k, train, labels, batch_size=100)
    np.testing.assert_array_equal(knn.neighbours(q), ref[:, :k])
    # scikit-learn breaks distance ties by the lower index on float inputs (on uint8 ones it
    # falls back to np.argpartition, whose order among equal distances is arbitrary).
    sk = KNeighborsClassifier(k, algorithm="brute").fit(train.astype(np.float64), labels)
    np.testing.assert_array_equal(knn.predict(q), sk.predict(q.astype(np.float64)))
    if label is not None:  # k = 1: the lower index (label 7); k = 2: a 1-1 vote, the smaller 2
      assert np.all(knn.predict(q[:50]) == label)


def test_knn_dense_path_equals_brute_force(pixels):
  """Queries with more than ``max_groups`` candidate groups take the dense path (exact distances
  to every training point: one matmul per 64 queries, or pairs for a few); same answers."""
  x, y, q, _ = pixels
  x, y = x[:2100], y[:2100]
  rng = np.random.default_rng(1)
  far = np.stack([np.zeros(784), np.full(784, 255), rng.integers(0, 256, 784)]).astype(np.uint8)
  queries = np.concatenate([q[:97], far])  # far from every digit
  ref = brute_neighbours(x, queries, 3)
  pruned = KNN(3, x, y, batch_size=100)
  np.testing.assert_array_equal(pruned.neighbours(queries), ref)
  assert pruned.dense_queries == 0
  forced = KNN(3, x, y, batch_size=100, max_groups=4)
  np.testing.assert_array_equal(forced.neighbours(queries), ref)
  assert 8 < forced.dense_queries < len(queries)
  np.testing.assert_array_equal(forced._dense(far), ref[-3:])  # pylint: disable=protected-access


def test_knn_lower_bounds_hold_and_prune(pixels):
  """What exactness rests on: the guarded float32 PCA bound never exceeds a true distance."""
  x, y, q, _ = pixels
  x = x[:2000]
  rng = np.random.default_rng(2)
  queries = np.concatenate([q[:100], rng.integers(0, 256, (5, 784)).astype(np.uint8),
                            x[:5]])  # noise, and distances of 0
  bounds = KNN(3, x, y[:2000])._index.lower_bounds(queries)  # pylint: disable=protected-access
  exact = np.stack([((x.astype(np.int64) - row)**2).sum(1) for row in queries.astype(np.int64)])
  assert np.all(bounds <= exact)
  kth = np.sort(exact[:100], 1)[:, 2:3]
  assert np.mean(bounds[:100] <= kth) < 0.05  # the bound alone rules out > 95% of the points


def test_knn_on_hog_equals_sklearn(data):
  tr, te = data
  x, q = features.compute("hog", tr.images), features.compute("hog", te.images)
  ref = KNeighborsClassifier(3, algorithm="brute").fit(x, tr.labels).predict(q)
  assert np.mean(KNN(3, x, tr.labels).predict(q) == ref) >= 0.998  # float32 vs float64 ties


def model(name, **fields):
  m = ml_collections.ConfigDict({"name": name, **fields})
  return classic_models.Classic(name, classic_models.settings(m))


@pytest.mark.slow
def test_svm_and_forest_predict_like_sklearn_from_saved_arrays(data):
  tr, te = data
  x, q = features.compute("hog", tr.images), features.compute("hog", te.images)
  svm = model("svm", C=10.0).fit(x, tr.labels)
  ref = SVC(C=10.0, gamma="scale").fit(x, tr.labels).predict(q)
  np.testing.assert_array_equal(svm.predict(q), ref)
  forest = model("random_forest", n_estimators=20).fit(x, tr.labels)
  sk = RandomForestClassifier(20, max_features="sqrt", n_jobs=-1, random_state=0).fit(x, tr.labels)
  np.testing.assert_array_equal(forest.predict(q), sk.predict(q))
  assert np.mean(svm.predict(q) == te.labels) > 0.9


@pytest.mark.parametrize("k", [1, 5])
def test_classic_knn_votes_over_its_k_neighbours(pixels, k):
  """Through the classic model (config.model.k), not just the KNN class."""
  x, y, q, _ = pixels
  fitted = model("knn", k=k).fit(x[:2000], y[:2000])
  votes = fitted.scores(q)
  assert np.all(votes.sum(-1) == k)
  sk = KNeighborsClassifier(k, algorithm="brute").fit(x[:2000].astype(np.float64), y[:2000])
  np.testing.assert_array_equal(fitted.predict(q), sk.predict(q.astype(np.float64)))


@pytest.mark.slow
@pytest.mark.parametrize("name,fields", [
    ("svm", {"features": "pixels", "pca": 30}), ("random_forest", {"n_estimators": 10}),
    ("linear_svm", {"epochs": 3}), ("knn", {"k": 1})])
def test_fit_save_load_round_trip(raw_dir, tfds_dir, tmp_path, name, fields):
  config = config_lib.defaults()
  config.model = ml_collections.ConfigDict({"name": name, **fields})
  config.data.raw_dir, config.data.tfds_dir = str(raw_dir), str(tfds_dir)
  config.data.train_limit = 2000
  final = train.train_and_evaluate(config, tmp_path)
  assert final["test_accuracy"] > 0.75, final
  last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
  assert last["test_accuracy"] == final["test_accuracy"]
  saved_config, loaded = classic.load(tmp_path)
  assert saved_config.model.name == name
  images = load_tfds("mnist", "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir),
                     stop=300).images
  fresh = classic_models.Classic(name, loaded.settings, dict(loaded.arrays))
  x = classic.featurize(loaded, images)
  np.testing.assert_array_equal(loaded.predict(x), fresh.predict(x))
  assert np.mean(loaded.predict(x) == load_tfds(
      "mnist", "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir), stop=300).labels) > 0.75


def test_bad_classic_field_is_named():
  config = config_lib.defaults()
  config.model = ml_collections.ConfigDict({"name": "knn", "k": 0})
  with pytest.raises(config_lib.ConfigError, match="model.k"):
    config_lib.validate(config)
