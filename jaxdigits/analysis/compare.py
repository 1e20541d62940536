"""Every model x feature combination on the same splits, in one table.

    python -m jaxdigits.compare --dataset=mnist [--out=runs/compare_mnist] [--only=knn_pixels,...]
        [--train_limit=N] [--epochs=N]

Each entry trains (or resumes, or reloads) in ``OUT/<entry>/`` through
``train.train_and_evaluate``, then is timed predicting the test split. Writes ``table.md``,
``table.csv`` and ``accuracy.png`` into OUT: accuracy, macro F1, train seconds (fit time, or
the sum of epoch times), predict microseconds per image (once compiled / loaded).
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any, Sequence

import ml_collections
import numpy as np
from sklearn.metrics import f1_score

import jaxdigits
from jaxdigits import config as config_lib
from jaxdigits.errors import ConfigError
from jaxdigits import records
from jaxdigits.models import features
from jaxdigits.training import engine as train
from jaxdigits.data import pipeline

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# entry → (config file in configs/, model field overrides)
ENTRIES: dict[str, tuple[str, dict[str, Any]]] = {
    "logistic_pixels": ("linear.py", {}),
    "mlp_pixels": ("mlp.py", {}),
    "cnn_pixels": ("cnn.py", {}),
    "resnet_pixels": ("resnet.py", {}),
    "knn_pixels": ("knn.py", {}),
    "knn_hog": ("knn.py", {"features": "hog"}),
    "linear_svm_hog": ("linear_svm.py", {}),
    "svm_pca50": ("svm.py", {}),
    "svm_hog": ("hog_svm.py", {}),
    "svm_sobel_pca50": ("svm.py", {"features": "sobel"}),
    "random_forest_pixels": ("random_forest.py", {}),
    "random_forest_hog": ("random_forest.py", {"features": "hog"}),
}
WARM_UP = 500  # images: one FlaxPredictor batch, so timing starts with the program compiled
COLUMNS = ("model", "test_accuracy", "macro_f1", "train_seconds", "predict_us_per_image")


def entry_config(entry: str, dataset: str, train_limit: int, epochs: int
                 ) -> ml_collections.ConfigDict:
  file, fields = ENTRIES[entry]
  config = config_lib.load_file(REPO_CONFIGS / file)
  for k, v in fields.items():
    config.model[k] = v
  config.data.dataset = dataset
  config.data.train_limit = train_limit
  if epochs:
    config.train.num_epochs = epochs
  config.progress_bar = False
  return config


def _measure(entry: str, workdir: Path, test: pipeline.Split, final: dict[str, Any]
             ) -> dict[str, Any]:
  predictor = jaxdigits.load(workdir)  # a Flax checkpoint or a classic fit
  predictor.logits(test.images[:WARM_UP])  # compile / build the index once
  start = time.perf_counter()
  pred = predictor.logits(test.images).argmax(-1)
  seconds = time.perf_counter() - start
  # A classic fit's time, or every epoch's, also those of earlier, resumed invocations.
  train_seconds = records.read(workdir).epoch_seconds
  return {"model": entry, "test_accuracy": float(np.mean(pred == test.labels)),
          "macro_f1": float(f1_score(test.labels, pred, average="macro")),
          "train_seconds": train_seconds, "predict_us_per_image": seconds / len(test) * 1e6}


def write_table(rows: list[dict[str, Any]], out: Path) -> None:
  out.mkdir(parents=True, exist_ok=True)
  with open(out / "table.csv", "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
  lines = ["| model | test accuracy | macro F1 | train s | predict µs/image |",
           "| --- | --- | --- | --- | --- |"]
  lines += [f"| {r['model']} | {r['test_accuracy']:.2%} | {r['macro_f1']:.4f} | "
            f"{r['train_seconds']:.1f} | {r['predict_us_per_image']:.1f} |" for r in rows]
  (out / "table.md").write_text("\n".join(lines) + "\n")
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=(8, 0.4 * len(rows) + 1.2))
  ax = fig.subplots()
  ax.barh([r["model"] for r in rows], [100 * r["test_accuracy"] for r in rows])
  ax.set_xlim(max(0, min(100 * r["test_accuracy"] for r in rows) - 5), 100)
  ax.set_xlabel("test accuracy (%)")
  fig.tight_layout()
  fig.savefig(out / "accuracy.png", dpi=100)


def compare(dataset: str, out: str | Path, only: Sequence[str] = (), train_limit: int = 0,
            epochs: int = 0) -> list[dict[str, Any]]:
  """Trains/evaluates each entry (all of ENTRIES unless ``only``) and writes the table."""
  unknown = sorted(set(only) - set(ENTRIES))
  if unknown:
    raise ConfigError(f"--only: unknown entry {unknown[0]!r}; choose from {sorted(ENTRIES)}")
  out = Path(out)
  cache = features.FeatureCache()  # one dataset, one set of splits: features computed once
  rows = []
  test = None
  for entry in only or ENTRIES:
    config = entry_config(entry, dataset, train_limit, epochs)
    workdir = out / entry
    final = train.train_and_evaluate(config, workdir, feature_cache=cache)
    if test is None:
      test = pipeline.load_splits(config.data).test
    rows.append(_measure(entry, workdir, test, final))
    print(json.dumps(rows[-1]), flush=True)
  write_table(rows, out)
  return rows
