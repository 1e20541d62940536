"""A trained model as one pure function, for ONNX (``onnx.py``) and StableHLO (``stablehlo.py``).

Both formats hold the same function, whose contract ``contract()`` writes into the model
card: float32 images [N, H, W, 1] (28x28 for MNIST-style models) with values in [0, 1],
MNIST-style (bright ink on black, as ``preprocess.to_mnist_style`` makes them, divided by
255) → logits [N, 10], for any N.

What exports (``forward_of``), to both formats unless said: a Flax model; an ensemble, as
one graph averaging its members' probabilities (logits = log of the mean, as ``Ensemble``);
a linear SVM on pixel or Sobel features (features, PCA and decision values are all JAX; on
HOG features, StableHLO only); test-time augmentation, StableHLO only (``_TTA_ONNX``).
Refused by name: kNN, the RBF SVM and the random forest (see ``_REFUSED``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxdigits import manifest
from jaxdigits.data import augment
from jaxdigits.errors import BundleError

# images float32 [N, H, W, 1] in [0, 1] → logits float32 [N, classes]
Forward = Callable[[jax.Array], jax.Array]
ONNX_FILE, STABLEHLO_FILE = manifest.ONNX, manifest.STABLEHLO
# The largest |exported - JAX| logit the exporters accept on their probe batch; fidelity on
# all of MNIST test is measured by tests/test_export_onnx.py and benchmarks/export.py.
TOLERANCE = 1e-4

TARGETS = ("onnx", "stablehlo")
# Each view is a bilinear warp rounded to whole grey levels. jax2onnx cannot convert
# map_coordinates under a symbolic batch; the same warp as a gather of 4 fixed taps converts,
# but onnxruntime's arithmetic rounds a few pixels the other way from XLA's, which moved the
# shipped CNN's TTA logits by up to 6.5e-3 on MNIST test. StableHLO keeps XLA's warp: 6e-6.
_TTA_ONNX = ("test-time augmentation (--tta) does not export to ONNX: onnxruntime would round "
             "a few warped pixels of its views differently from JAX, moving logits by up to "
             "~1e-2; export the model without --tta (model.stablehlo keeps the augmentation)")
_REFUSED = {
    "knn": "it searches its stored training images at prediction time (numpy, integer "
           "distances), which has no graph form",
    "svm": "its one-vs-one votes are counted in float64 numpy over the support vectors",
    "random_forest": "its trees are walked node by node in numpy",
}


def contract(input_shape: Sequence[int], num_classes: int = 10) -> dict[str, Any]:
  """The exported function's interface, for ``model_card.json``."""
  h, w, c = input_shape
  # A model trained on native 16x16 USPS digits reads them as stored, not prepared images.
  made = ("MNIST-style: bright ink on black, as jaxdigits.inference.preprocess.to_mnist_style "
          "makes it" if (h, w) == (28, 28) else
          f"{h}x{w} digits as stored in the training dataset, bright ink on black")
  return {
      "input": {"dtype": "float32", "shape": ["N", h, w, c], "range": [0.0, 1.0],
                "format": f"{made}, divided by 255"},
      "output": {"dtype": "float32", "shape": ["N", num_classes], "meaning": "logits"},
      "batch": "any N: the batch dimension is symbolic in both files",
  }


def flax_forward(model: Any, variables: Any) -> Forward:
  """A Flax module in inference mode (BatchNorm running averages, no dropout)."""
  return lambda images: model.apply(variables, images, train=False)


def _log(probs: jax.Array) -> jax.Array:
  # As Ensemble.logits: a zero probability becomes a large negative, not -inf.
  return jnp.log(jnp.maximum(probs, np.finfo(np.float32).tiny))


def ensemble_forward(members: Sequence[Forward]) -> Forward:
  """One graph: the log of the members' mean softmax."""
  members = tuple(members)
  return lambda images: _log(
      jnp.mean(jnp.stack([jax.nn.softmax(m(images), -1) for m in members]), 0))


def classic_forward(fitted: Any, target: str) -> Forward:
  """A fitted classic model: the linear SVM exports; the others are refused by name."""
  if fitted.name in _REFUSED:
    raise BundleError(f"a {fitted.name} model cannot be exported to ONNX or StableHLO: "
                      f"{_REFUSED[fitted.name]}; of the classic models only linear_svm "
                      "exports (as do Flax models and their ensembles)")
  if fitted.name != "linear_svm":
    raise BundleError(f"classic model {fitted.name!r} has no exporter")
  if target == "onnx" and fitted.settings["features"] == "hog":
    raise BundleError("a linear_svm on HOG features does not export to ONNX: jax2onnx 0.13 "
                      "cannot convert HOG's remainder op under a symbolic batch; serve its "
                      "model.stablehlo, or fit the model on pixels or sobel features")
  from jaxdigits.models import features  # pylint: disable=g-import-not-at-top
  extract = features.extractor(fitted.settings["features"])
  # Features read grey levels 0..255; rounding makes them the exact integers of the uint8
  # path the model was fitted on. ``scores`` is jnp-compatible for this model.
  return lambda images: jnp.asarray(
      fitted.scores(extract(jnp.round(images * 255.0))), jnp.float32)


def tta_forward(base: Forward, views: Sequence[augment.View]) -> Forward:
  """One graph: the log of ``base``'s mean softmax over the views, each view rounded to
  whole grey levels as ``augment.tta_views`` makes it (one pass over all views at once)."""

  def view(images: jax.Array, v: augment.View) -> jax.Array:
    if v == augment.IDENTITY:
      return images
    rotation, scale, down, right = v
    n = images.shape[0]
    moved = augment.affine(jnp.round(images * 255.0), jnp.full((n,), np.deg2rad(rotation)),
                           jnp.full((n,), scale), jnp.tile(jnp.array([[down, right]]), (n, 1)))
    return jnp.clip(jnp.round(moved), 0, 255) * (1.0 / 255.0)

  def forward(images: jax.Array) -> jax.Array:
    logits = base(jnp.concatenate([view(images, v) for v in views]))
    probs = jax.nn.softmax(logits, -1).reshape(len(views), images.shape[0], logits.shape[-1])
    return _log(jnp.mean(probs, 0))

  return forward


def forward_of(predictor: Any, target: str) -> Forward:
  """The pure function of any Predictor (plain, ensemble, test-time augmented, classic) for
  ``target`` ("onnx" or "stablehlo"); BundleError says why a model does not export."""
  if target not in TARGETS:
    raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
  views = getattr(predictor, "views", None)
  if views is not None:
    if target == "onnx":
      raise BundleError(_TTA_ONNX)
    return tta_forward(forward_of(predictor.base, target), views)
  members = getattr(predictor, "members", None)
  if members:
    return ensemble_forward([forward_of(m, target) for m in members])
  fitted = getattr(predictor, "fitted", None)
  if fitted is not None:
    return classic_forward(fitted, target)
  return flax_forward(predictor.module, predictor.variables)  # a FlaxPredictor


def export_all(predictor: Any, directory: str | os.PathLike) -> dict[str, Any]:
  """Writes ``model.onnx`` and ``model.stablehlo`` of ``predictor`` into ``directory``.

  Returns the model card's record of them: the contract, and per file what its exporter
  reports, or why that format refused this model (the file is then not written). A failed
  conversion or fidelity check still raises.
  """
  # The format modules import this package, so they are imported here, not at the top.
  from jaxdigits.exporters import onnx, stablehlo  # pylint: disable=g-import-not-at-top
  directory = Path(directory)
  shape = tuple(predictor.input_shape)
  files: dict[str, Any] = {}
  for name, target, write in ((ONNX_FILE, "onnx", onnx.to_onnx),
                              (STABLEHLO_FILE, "stablehlo", stablehlo.to_stablehlo)):
    # Without the onnx extra the bundle is still made, and its card says how to add the file.
    refused = onnx.unavailable() if target == "onnx" else None
    if refused is None:
      try:
        forward = forward_of(predictor, target)
      except BundleError as e:
        refused = str(e)
    files[name] = {"refused": refused} if refused else write(forward, directory / name, shape)
  return {"contract": contract(shape), "files": files}


def probe(input_shape: Sequence[int], n: int = 3, seed: int = 0) -> np.ndarray:
  """A few random images in [0, 1] for the exporters' own fidelity check."""
  return np.random.default_rng(seed).random((n, *input_shape), np.float32)


def check_close(path: str, got: np.ndarray, want: np.ndarray) -> float:
  """Raises BundleError when an export's logits stray from JAX's; returns the largest gap."""
  gap = float(np.max(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))))
  if not np.isfinite(gap) or gap > TOLERANCE:
    raise BundleError(f"{path}: exported logits differ from JAX's by {gap:.3g} "
                      f"(> {TOLERANCE}) on a probe batch; the exporter mistranslated this "
                      "model: report it with the model's config")
  return gap
