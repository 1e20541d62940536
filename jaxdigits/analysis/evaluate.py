"""Evaluation: metrics, error analysis and figures of any model ``jaxdigits.load`` reads.

``evaluate_run`` (``python -m jaxdigits.evaluate``) writes metrics.json, the confusion matrix
(text and PNG), a gallery of the worst errors and a reliability diagram into
<workdir>/eval/<dataset>_<split>/ (or ``out_dir``); with ``label_issues``, the split's likely
label errors too (``analysis.label_issues``; the train split by K-fold cross-validation).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn import metrics as skm

import jaxdigits
from jaxdigits import config as config_lib
from jaxdigits.analysis import label_issues as label_issues_lib
from jaxdigits.analysis import plots
from jaxdigits.data import Split, load_tfds
from jaxdigits.errors import ConfigError
from jaxdigits.inference import contract, explain
from jaxdigits.inference import load as load_lib
from jaxdigits.inference import preprocess
from jaxdigits.inference.predictor import FlaxPredictor, Predictor
from jaxdigits.models.forward import accuracy  # noqa: F401  (defined once, for training too)

NUM_CLASSES = 10
ECE_BINS = 15
GALLERY_SIZE = 36
SPLITS = ("train", "validation", "test")


def reliability(probs: np.ndarray, labels: np.ndarray, num_bins: int = ECE_BINS
                ) -> tuple[float, list[dict[str, float]]]:
  """Expected calibration error and its bins (top-class confidence vs accuracy).

  ECE = sum over equal-width confidence bins of (bin share) * |accuracy - mean confidence|.
  """
  confidence = probs.max(-1)
  correct = probs.argmax(-1) == labels
  # Right-closed bins so that confidence 1.0 falls in the last one.
  which = np.clip(np.ceil(confidence * num_bins).astype(int) - 1, 0, num_bins - 1)
  bins, ece = [], 0.0
  for b in range(num_bins):
    mask = which == b
    if not mask.any():
      continue
    acc, conf = float(correct[mask].mean()), float(confidence[mask].mean())
    ece += mask.mean() * abs(acc - conf)
    bins.append({"low": b / num_bins, "high": (b + 1) / num_bins, "count": int(mask.sum()),
                 "accuracy": acc, "confidence": conf})
  return float(ece), bins


def confused_pairs(confusion: np.ndarray, top: int = 10) -> list[dict[str, Any]]:
  """The most frequent true → predicted mistakes, most frequent first."""
  errors = confusion.copy()
  np.fill_diagonal(errors, 0)
  total = errors.sum()
  order = np.argsort(-errors, axis=None, kind="stable")[:top]
  pairs = []
  for flat in order:
    t, p = np.unravel_index(flat, errors.shape)
    if errors[t, p] == 0:
      break
    pairs.append({"true": int(t), "predicted": int(p), "count": int(errors[t, p]),
                  "share_of_errors": float(errors[t, p] / total)})
  return pairs


def classification_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
  """Accuracy, per-class and averaged precision/recall/F1, log loss, ECE, confusion matrix."""
  labels = np.asarray(labels)
  preds = probs.argmax(-1)
  classes = list(range(NUM_CLASSES))
  precision, recall, f1, support = skm.precision_recall_fscore_support(
      labels, preds, labels=classes, zero_division=0)
  averages = {}
  for average in ("macro", "weighted"):
    p, r, f, _ = skm.precision_recall_fscore_support(labels, preds, labels=classes,
                                                     average=average, zero_division=0)
    averages[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
  confusion = skm.confusion_matrix(labels, preds, labels=classes)
  ece, bins = reliability(probs, labels)
  confidence = probs.max(-1)
  wrong = preds != labels
  summary = lambda c: ({"median": float(np.median(c)), "mean": float(c.mean()),
                        "share_above_0.9": float((c > 0.9).mean())} if c.size else None)
  return {
      "examples": int(len(labels)),
      "accuracy": float(skm.accuracy_score(labels, preds)),
      "errors": int((preds != labels).sum()),
      "per_class": {str(c): {"precision": float(precision[c]), "recall": float(recall[c]),
                             "f1": float(f1[c]), "support": int(support[c])} for c in classes},
      **averages,
      "log_loss": float(skm.log_loss(labels, probs, labels=classes)),
      "expected_calibration_error": ece,
      "reliability_bins": bins,
      "confusion_matrix": confusion.tolist(),
      "confused_pairs": confused_pairs(confusion),
      # How sure the model is when right and when wrong: confident errors are the costly kind.
      "confidence_correct": summary(confidence[~wrong]),
      "confidence_wrong": summary(confidence[wrong]),
  }


def worst_errors(probs: np.ndarray, labels: np.ndarray, top: int = GALLERY_SIZE
                 ) -> list[dict[str, Any]]:
  """Misclassified examples, the most confidently wrong first."""
  preds = probs.argmax(-1)
  wrong = np.flatnonzero(preds != labels)
  wrong = wrong[np.argsort(-probs[wrong, preds[wrong]], kind="stable")][:top]
  return [{"index": int(i), "true": int(labels[i]), "predicted": int(preds[i]),
           "confidence": float(probs[i, preds[i]]),
           "probability_of_true": float(probs[i, labels[i]])} for i in wrong]


def load_eval_split(predictor: Predictor, dataset: str, split: str, *, raw_dir: str | None = None,
                    data_dir: str | None = None) -> Split:
  """``split`` of ``dataset`` in the predictor's input format.

  train/validation follow training's rule (validation is the last fraction of the official
  train split). Digits of another size are resized MNIST-style, the same way training on
  USPS with ``data.mnist_style`` does, so an MNIST model reads USPS and the reverse.
  """
  if dataset not in config_lib.DATASETS:
    raise ConfigError(f"--dataset: unknown dataset {dataset!r}; choose one of "
                     f"{list(config_lib.DATASETS)}")
  if split not in SPLITS:
    raise ConfigError(f"--split: unknown split {split!r}; choose one of {list(SPLITS)}")
  kw = dict(raw_dir=raw_dir, data_dir=data_dir)
  if split == "test":
    data = load_tfds(dataset, "test", **kw)
  else:
    cut = config_lib.validation_start(dataset, predictor.config.data.validation_fraction)
    data = (load_tfds(dataset, "train", stop=cut, **kw) if split == "train"
            else load_tfds(dataset, "train", start=cut, **kw))
  size = predictor.input_shape[0]
  if data.images.shape[1] != size:
    if size != preprocess.MNIST_SIZE:
      raise ConfigError(f"the model reads {size}x{size} {predictor.config.data.dataset} digits, "
                       f"so it cannot read {dataset}; evaluate a model trained with "
                       f"--config.data.mnist_style=True instead")
    data = Split(preprocess.mnist_style_batch(data.images), data.labels)
  return data


def split_range(predictor: Predictor, dataset: str, split: str) -> tuple[str, int, int | None]:
  """(tfds split, start, stop) that ``load_eval_split`` reads for ``split``."""
  if split == "test":
    return "test", 0, None
  cut = config_lib.validation_start(dataset, predictor.config.data.validation_fraction)
  return ("train", 0, cut) if split == "train" else ("train", cut, None)


def _error_heatmaps(predictor: Predictor, images: np.ndarray, predicted: np.ndarray
                    ) -> np.ndarray | None:
  """What pushed each error towards its wrong answer (SmoothGrad overlays); Flax models only,
  since classic models, ensembles and test-time augmentation have no one gradient."""
  if not isinstance(predictor, FlaxPredictor) or not len(images):
    return None
  maps = explain.saliency(predictor.module.apply, predictor.variables, images, predicted)
  return explain.overlay(images, maps)


def evaluate(predictor: Predictor, data: Split, out_dir: str | Path, *,
             description: dict[str, Any] | None = None,
             label_sources: np.ndarray | None = None,
             label_probs: np.ndarray | None = None,
             label_filter: str = label_issues_lib.FILTERS[0]) -> dict[str, Any]:
  """Evaluates ``predictor`` on ``data`` and writes every output into ``out_dir``.

  ``label_sources``: each example's raw-file row; given, the likely label errors are written
  too, from ``label_probs`` (out-of-sample probabilities) or else the predictor's.
  Returns the metrics written to metrics.json.
  """
  out = Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  logits = predictor.logits(data.images)
  seconds = time.perf_counter() - start
  probs = contract.softmax(logits)
  labels = np.asarray(data.labels)
  result = {**(description or {}), **classification_metrics(probs, labels),
            "inference_seconds_with_compile": seconds,
            "worst_errors": worst_errors(probs, labels)}
  if label_sources is not None:
    issues = label_issues_lib.find(labels, probs if label_probs is None else label_probs,
                                   label_filter)
    title = f"{result.get('dataset', '')} {result.get('split', '')}".strip()
    result["label_issues"] = {**label_issues_lib.write(issues, label_sources, data.images, out,
                                                       title), "filter": label_filter}
  (out / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
  (out / "confusion_matrix.txt").write_text(confusion_text(np.array(result["confusion_matrix"])))
  plots.confusion_matrix(np.array(result["confusion_matrix"]), out / "confusion_matrix.png")
  gallery = result["worst_errors"]
  shown = data.images[[e["index"] for e in gallery]]
  plots.error_gallery(shown, gallery, out / "misclassified.png",
                      heatmaps=_error_heatmaps(predictor, shown,
                                               np.array([e["predicted"] for e in gallery])))
  plots.reliability_diagram(result["reliability_bins"], result["expected_calibration_error"],
                            out / "reliability.png")
  return result


def confusion_text(confusion: np.ndarray) -> str:
  """The matrix as an aligned table: rows are true digits, columns predicted ones."""
  width = max(5, len(str(confusion.max())) + 1)
  head = "true\\pred" + "".join(f"{c:>{width}}" for c in range(confusion.shape[1]))
  rows = [f"{t:>9}" + "".join(f"{v:>{width}}" for v in row) for t, row in enumerate(confusion)]
  return "\n".join([head, *rows]) + "\n"


def default_out_dir(paths: Sequence[Path], name: str) -> Path:
  """<workdir>/eval/<name> of the first run; for a bundle, eval/<bundle name>/<name> here,
  since a file added to a bundle would fail its verification."""
  kind, root = load_lib.locate(paths[0])
  if kind is load_lib.Kind.BUNDLE:
    return Path("eval") / root.name / name
  return root / "eval" / name


def evaluate_run(path: str | Path | Sequence[str | Path] | None = None,
                 dataset: str | None = None, split: str = "test", *,
                 out_dir: str | Path | None = None, raw_dir: str | None = None,
                 data_dir: str | None = None, predictor: Predictor | None = None,
                 tta: bool = False, label_issues: bool = False,
                 folds: int = 0, label_filter: str = label_issues_lib.FILTERS[0]
                 ) -> tuple[dict[str, Any], Path]:
  """Evaluates what ``jaxdigits.load(path, tta=tta)`` loads (a bundle, a Flax or classic
  run, several: their ensemble; None: the shipped model) on ``dataset`` (default: the one it
  was trained on) and writes the outputs.

  Returns (metrics, output folder); the folder defaults to ``default_out_dir`` of
  <dataset>_<split>, for an ensemble ensemble<N>_<dataset>_<split>, with ``_tta`` after it
  for test-time augmentation. ``predictor``: already loaded from ``path``.
  ``label_issues``: also the split's likely label errors; on the train split (which the
  model saw) from ``folds``-fold cross-validated models of the run's config.
  """
  paths = load_lib.paths_of(path)
  predictor = predictor or jaxdigits.load(paths, tta=tta)
  trained_on = predictor.config.data.dataset
  dataset = dataset or trained_on
  if label_issues and split == "train" and folds < 2:
    raise ConfigError("--label_issues on --split=train needs out-of-sample probabilities: "
                      "add --folds=K (K >= 2) to score each example by a model trained "
                      "without it")
  data = load_eval_split(predictor, dataset, split, raw_dir=raw_dir, data_dir=data_dir)
  sources = probs = None
  if label_issues:
    tfds_split, start, stop = split_range(predictor, dataset, split)
    sources = label_issues_lib.split_source_indices(dataset, tfds_split, start=start,
                                                    stop=stop, raw_dir=raw_dir,
                                                    data_dir=data_dir)
    if split == "train":
      from jaxdigits.analysis import crossval  # pylint: disable=g-import-not-at-top
      probs, _, _ = crossval.kfold_probabilities(predictor.config, data, folds)
  name = f"{dataset}_{split}" if len(paths) == 1 else f"ensemble{len(paths)}_{dataset}_{split}"
  name += "_tta" if tta else ""
  out = Path(out_dir) if out_dir else default_out_dir(paths, name)
  description = {"dataset": dataset, "split": split, "trained_on": trained_on,
                 "cross_dataset": dataset != trained_on,
                 "input_shape": list(predictor.input_shape), "tta": tta,
                 "runs": [str(load_lib.locate(p)[1]) for p in paths]}
  return evaluate(predictor, data, out, description=description, label_sources=sources,
                  label_probs=probs, label_filter=label_filter), out
