"""Classic models (not trained by the SGD trainer) on features: kNN, linear SVM, RBF
SVM, random forest.

Each model's fitted state is a dict of numpy arrays (saved as npz by ``jaxdigits.classic``,
never pickled) and predicts from those arrays alone, so a loaded model predicts exactly as the
fitted one. scikit-learn fits the RBF SVM and the forest; their prediction is re-implemented
here on the saved arrays (the tests check it equals scikit-learn's).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxdigits.models import features as features_lib
from jaxdigits.models.knn import KNN

NUM_CLASSES = 10
# Per model: its fields under ``config.model`` and their defaults.
FIELDS: dict[str, dict[str, Any]] = {
    "knn": {"features": "pixels", "pca": 0, "k": 3},
    "linear_svm": {"features": "hog", "pca": 0, "l2": 1e-4, "epochs": 20, "batch_size": 256,
                   "learning_rate": 1e-2},
    "svm": {"features": "hog", "pca": 0, "C": 10.0, "gamma": "scale"},
    "random_forest": {"features": "pixels", "pca": 0, "n_estimators": 200,
                      "max_features": "sqrt"},
}
# What each field means, for every model that takes it (docs/config.md is generated from it).
FIELD_DOCS: dict[str, str] = {
    "features": "what the model reads: 'pixels' (flattened, [0, 1]), 'sobel' (edge "
                "magnitude) or 'hog' (histograms of oriented gradients)",
    "pca": "project the features onto this many principal components first; 0: no PCA",
    "k": "neighbours that vote (distance ties go to the lower training index, vote ties to "
         "the smaller label)",
    "l2": "weight of the L2 penalty on the weights",
    "epochs": "passes over the training split (Adam on the one-vs-rest hinge loss)",
    "batch_size": "training examples per Adam step",
    "learning_rate": "Adam's initial learning rate (cosine decay to 0 over the epochs)",
    "C": "inverse regularisation strength of scikit-learn's SVC",
    "gamma": "RBF kernel width: 'scale' (1 / (features x variance), scikit-learn's default) "
             "or a positive float",
    "n_estimators": "trees in the forest",
    "max_features": "features tried per split, as scikit-learn's RandomForestClassifier takes "
                    "it ('sqrt', 'log2', an int or a fraction)",
}


def settings(model: ml_collections.ConfigDict) -> dict[str, Any]:
  """The model's fields with defaults filled in; raises ValueError naming a bad field."""
  known = FIELDS[model.name]
  unknown = sorted(set(model) - set(known) - {"name"})
  if unknown:
    raise ValueError(f"config field model.{unknown[0]}: not a field of {model.name}; "
                     f"it takes {sorted(known)}")
  s = {**known, **{k: v for k, v in model.items() if k != "name"}}
  if s["features"] not in features_lib.NAMES:
    raise ValueError(f"config field model.features: unknown feature {s['features']!r}; "
                     f"choose one of {list(features_lib.NAMES)}")
  if not isinstance(s["pca"], int) or s["pca"] < 0:
    raise ValueError(f"config field model.pca: must be a non-negative integer (0: no PCA), "
                     f"got {s['pca']!r}")
  for field in ("k", "epochs", "batch_size", "n_estimators"):
    if field in s and (not isinstance(s[field], int) or s[field] <= 0):
      raise ValueError(f"config field model.{field}: must be a positive integer, "
                       f"got {s[field]!r}")
  for field in ("l2", "learning_rate", "C"):
    if field in s and not (isinstance(s[field], (int, float)) and s[field] > 0):
      raise ValueError(f"config field model.{field}: must be a positive number, got {s[field]!r}")
  if model.name == "svm" and not (s["gamma"] == "scale" or isinstance(s["gamma"], float)):
    raise ValueError(f"config field model.gamma: 'scale' or a positive float, got {s['gamma']!r}")
  return s


def check(model: ml_collections.ConfigDict) -> None:
  settings(model)


# ------------------------------------------------------------------------------- the models


def _pca(x: np.ndarray, dims: int, seed: int) -> dict[str, np.ndarray]:
  from sklearn.decomposition import PCA  # pylint: disable=g-import-not-at-top
  pca = PCA(dims, random_state=seed).fit(x)
  return {"pca_mean": pca.mean_.astype(np.float32), "pca_components": pca.components_.astype(
      np.float32)}


def transform(arrays: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
  """Applies the fitted PCA, if any, to features [N, F]."""
  if "pca_components" not in arrays:
    return x
  return (x.astype(np.float32) - arrays["pca_mean"]) @ arrays["pca_components"].T


def _hinge_fit(x: np.ndarray, y: np.ndarray, s: dict[str, Any], seed: int
               ) -> dict[str, np.ndarray]:
  """One-vs-rest linear SVM: hinge loss per class plus L2, minibatch Adam, on the device."""
  mean, std = x.mean(0), x.std(0) + 1e-6
  xs = jnp.asarray((x - mean) / std)
  signs = jnp.asarray(2 * np.eye(NUM_CLASSES, dtype=np.float32)[y] - 1)
  steps = len(x) // s["batch_size"]
  tx = optax.adam(optax.cosine_decay_schedule(s["learning_rate"], steps * s["epochs"]))
  params = {"w": jnp.zeros((x.shape[1], NUM_CLASSES)), "b": jnp.zeros(NUM_CLASSES)}

  def loss(p, xb, sb):
    margins = sb * (xb @ p["w"] + p["b"])
    return jnp.mean(jnp.sum(jax.nn.relu(1 - margins), 1)) + s["l2"] / 2 * jnp.sum(p["w"]**2)

  @jax.jit
  def epoch(carry, key):
    idx = jax.random.permutation(key, len(x))[:steps * s["batch_size"]].reshape(steps, -1)

    def step(c, i):
      p, o = c
      g = jax.grad(loss)(p, xs[i], signs[i])
      u, o = tx.update(g, o, p)
      return (optax.apply_updates(p, u), o), None

    return jax.lax.scan(step, carry, idx)[0]

  carry = (params, tx.init(params))
  for key in jax.random.split(jax.random.key(seed), s["epochs"]):
    carry = epoch(carry, key)
  p = carry[0]
  return {"mean": mean.astype(np.float32), "std": std.astype(np.float32),
          "w": np.asarray(p["w"]), "b": np.asarray(p["b"])}


def _svc_arrays(svc) -> dict[str, np.ndarray]:
  return {"support_vectors": svc.support_vectors_, "n_support": svc.n_support_.astype(np.int64),
          "dual_coef": svc.dual_coef_, "intercept": svc.intercept_,
          "gamma": np.array(svc._gamma), "classes": svc.classes_.astype(np.int64)}  # pylint: disable=protected-access


def svc_scores(a: dict[str, np.ndarray], x: np.ndarray, batch: int = 1000) -> np.ndarray:
  """One-vs-one votes [N, classes] of a fitted RBF SVC, as libsvm counts them."""
  sv, coef, n_sup = a["support_vectors"], a["dual_coef"], a["n_support"]
  ends = np.cumsum(n_sup)
  starts = ends - n_sup
  n = len(n_sup)
  sv_sq = np.sum(sv**2, 1)
  votes = np.zeros((len(x), n))
  for s in range(0, len(x), batch):
    xb = x[s:s + batch].astype(np.float64)
    d = np.sum(xb**2, 1)[:, None] + sv_sq[None] - 2 * xb @ sv.T
    kern = np.exp(-a["gamma"] * np.maximum(d, 0))
    pair = 0
    for i in range(n):
      for j in range(i + 1, n):
        si, sj = slice(starts[i], ends[i]), slice(starts[j], ends[j])
        dec = kern[:, si] @ coef[j - 1, si] + kern[:, sj] @ coef[i, sj] + a["intercept"][pair]
        votes[s:s + batch, i] += dec > 0
        votes[s:s + batch, j] += dec <= 0
        pair += 1
  return votes


def _forest_arrays(forest) -> dict[str, np.ndarray]:
  trees = [e.tree_ for e in forest.estimators_]
  size = max(t.node_count for t in trees)
  pad = lambda v, fill: np.stack([np.pad(getattr(t, v), (0, size - t.node_count),
                                         constant_values=fill) for t in trees])
  values = np.zeros((len(trees), size, NUM_CLASSES))
  for i, t in enumerate(trees):
    v = t.value[:, 0, :]
    values[i, :t.node_count, forest.classes_] = (v / v.sum(1, keepdims=True)).T
  return {"left": pad("children_left", -1), "right": pad("children_right", -1),
          "feature": pad("feature", 0), "threshold": pad("threshold", 0.0), "value": values}


def forest_scores(a: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
  """Mean class probabilities [N, classes] of the saved trees (scikit-learn's predict_proba)."""
  x = x.astype(np.float32)  # scikit-learn's trees compare float32 features
  trees = np.arange(len(a["left"]))[:, None]
  node = np.zeros((len(a["left"]), len(x)), np.int64)
  rows = np.arange(len(x))[None]
  while True:
    left = a["left"][trees, node]
    inner = left != -1
    if not inner.any():
      break
    go_left = x[rows, a["feature"][trees, node]] <= a["threshold"][trees, node]
    node = np.where(inner, np.where(go_left, left, a["right"][trees, node]), node)
  return a["value"][trees, node].sum(0) / len(a["left"])


class Classic:
  """A classic model: ``fit`` on features, ``scores`` [N, 10] whose argmax is the prediction,
  and ``arrays`` / ``from_arrays`` for its whole fitted state."""

  def __init__(self, name: str, s: dict[str, Any], arrays: dict[str, np.ndarray] | None = None):
    self.name, self.settings, self.arrays = name, s, arrays or {}
    self._knn = None

  def fit(self, x: np.ndarray, y: np.ndarray, seed: int = 0) -> "Classic":
    s, a = self.settings, {}
    if s["pca"]:
      a.update(_pca(x, s["pca"], seed))
    x = transform(a, x)
    if self.name == "knn":
      a.update(train=x, labels=y.astype(np.int32))
    elif self.name == "linear_svm":
      a.update(_hinge_fit(x, y, s, seed))
    elif self.name == "svm":
      from sklearn.svm import SVC  # pylint: disable=g-import-not-at-top
      a.update(_svc_arrays(SVC(C=s["C"], gamma=s["gamma"], kernel="rbf").fit(x, y)))
    else:
      from sklearn.ensemble import RandomForestClassifier  # pylint: disable=g-import-not-at-top
      a.update(_forest_arrays(RandomForestClassifier(
          s["n_estimators"], max_features=s["max_features"], n_jobs=-1,
          random_state=seed).fit(x, y)))
    self.arrays = a
    return self

  def scores(self, x: np.ndarray) -> np.ndarray:
    a = self.arrays
    x = transform(a, x)
    if self.name == "knn":
      if self._knn is None:
        self._knn = KNN(self.settings["k"], a["train"], a["labels"])
      return self._knn.scores(x)
    if self.name == "linear_svm":
      return ((x - a["mean"]) / a["std"]) @ a["w"] + a["b"]
    if self.name == "svm":
      return svc_scores(a, x)
    return forest_scores(a, x)

  def predict(self, x: np.ndarray) -> np.ndarray:
    return self.scores(x).argmax(-1)


CHECKERS: dict[str, Callable[[ml_collections.ConfigDict], None]] = {n: check for n in FIELDS}


STATE_DIR = "classic"


def featurize(model: Classic, images: np.ndarray,
              cache: features_lib.FeatureCache | None = None, key: str | None = None
              ) -> np.ndarray:
  """The model's input features of uint8 images [N, H, W, 1]."""
  s = model.settings
  if model.name == "knn" and s["features"] == "pixels" and not s["pca"]:
    return images.reshape(len(images), -1)  # uint8: the exact integer-distance path
  if cache is not None and key is not None:
    return cache.get(key, s["features"], images)
  return features_lib.compute(s["features"], images)


def save(model: Classic, config: ml_collections.ConfigDict,
         directory: str | Path) -> None:
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  np.savez(directory / "state.npz", **model.arrays)
  (directory / "config.json").write_text(config.to_json(indent=2))


def load(directory: str | Path) -> tuple[ml_collections.ConfigDict, Classic]:
  """The config and fitted model saved in a workdir (or its ``classic/`` folder)."""
  path = Path(directory)
  if (path / STATE_DIR).is_dir():
    path = path / STATE_DIR
  if not (path / "state.npz").is_file() or not (path / "config.json").is_file():
    raise FileNotFoundError(f"{path} holds no fitted classic model (state.npz + config.json); "
                            "fit one with jaxdigits.main first")
  config = ml_collections.ConfigDict(json.loads((path / "config.json").read_text()))
  with np.load(path / "state.npz", allow_pickle=False) as f:
    arrays = dict(f)
  return config, Classic(config.model.name,
                                        settings(config.model), arrays)
