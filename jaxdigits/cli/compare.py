"""Every model x feature combination on the same splits, in one table.

    python -m jaxdigits.compare --dataset=mnist [--out=runs/compare_mnist] [--only=knn_pixels,...]
        [--train_limit=N] [--epochs=N]

Each entry trains (or resumes, or reloads) in ``OUT/<entry>/`` through
``train.train_and_evaluate``, then is timed predicting the test split. Writes ``table.md``,
``table.csv`` and ``accuracy.png`` into OUT: accuracy, macro F1, train seconds (fit time, or
the sum of epoch times), predict microseconds per image (once compiled / loaded).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import ml_collections
import numpy as np
from sklearn.metrics import f1_score


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
COLUMNS = ("model", "test_accuracy", "macro_f1", "train_seconds", "predict_us_per_image")

from jaxdigits.analysis.compare import *  # noqa: F401,F403  (mechanical split; cleaned up next)


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default="mnist", choices=config_lib.DATASETS)
  parser.add_argument("--out", default=None, help="default: runs/compare_<dataset>")
  parser.add_argument("--only", default="", help="comma-separated entries; default: all")
  parser.add_argument("--train_limit", type=int, default=0)
  parser.add_argument("--epochs", type=int, default=0, help="override Flax epochs (0: config's)")
  args = parser.parse_args(argv)
  try:
    compare(args.dataset, args.out or f"runs/compare_{args.dataset}",
            [e for e in args.only.split(",") if e], args.train_limit, args.epochs)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


def run() -> None:
  sys.exit(main())


if __name__ == "__main__":
  run()
