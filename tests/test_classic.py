"""Classic models: JAX kNN equals scikit-learn's, saved arrays predict like the fitted model."""

from __future__ import annotations

import json

import ml_collections
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC

from jaxdigits import classic, config as config_lib, features, train
from jaxdigits.data import load_tfds
from jaxdigits.models import classic as classic_models
from jaxdigits.models.knn import KNN


@pytest.fixture(scope="module")
def data(raw_dir, tfds_dir):
  kw = dict(raw_dir=str(raw_dir), data_dir=str(tfds_dir))
  return load_tfds("mnist", "train", stop=3000, **kw), load_tfds("mnist", "test", stop=500, **kw)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_knn_pixels_equals_sklearn(data, k):
  tr, te = data
  x, q = tr.images.reshape(len(tr), -1), te.images.reshape(len(te), -1)
  ours = KNN(k, x, tr.labels, batch_size=200).predict(q)
  ref = KNeighborsClassifier(k, algorithm="brute").fit(x, tr.labels).predict(q)
  np.testing.assert_array_equal(ours, ref)
  assert np.mean(ours == te.labels) > 0.85


def test_knn_on_hog_equals_sklearn(data):
  tr, te = data
  x, q = features.compute("hog", tr.images), features.compute("hog", te.images)
  ref = KNeighborsClassifier(3, algorithm="brute").fit(x, tr.labels).predict(q)
  assert np.mean(KNN(3, x, tr.labels).predict(q) == ref) >= 0.998  # float32 vs float64 ties


def model(name, **fields):
  m = ml_collections.ConfigDict({"name": name, **fields})
  return classic_models.Classic(name, classic_models.settings(m))


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
