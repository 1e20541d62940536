"""Fitting classic models (kNN, SVMs, random forest): the engine's run for a model without epochs.

``engine.train_and_evaluate`` claims the workdir (the same config guard and lock as a Flax
run) and hands any ``config.model.name`` in ``models.CLASSIC`` here. The fitted state goes
to ``WORKDIR/classic/state.npz`` (arrays only, loaded without pickle) with its config as
``config.json``; ``metrics.jsonl`` gets the same final record as a Flax run, through the
same writer (``kind: classic``, ``best_epoch: null``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from jaxdigits import records
from jaxdigits.data import pipeline
from jaxdigits.models import classic as classic_models
from jaxdigits.models import features as features_lib
from jaxdigits.models.classic import STATE_DIR, featurize, load, save  # noqa: F401  (callers)
from jaxdigits.training.metrics_writer import MetricsWriter

FIT_FILE = "fit.json"


def fit(config: ml_collections.ConfigDict, workdir: Path, *, evaluate_test: bool = True,
        cache: features_lib.FeatureCache | None = None) -> dict[str, Any]:
  """Fits on the train split (unless a fit is saved: the guard made sure it is this
  config's), reports validation and, unless ``evaluate_test`` is False, test accuracy."""
  splits = pipeline.load_splits(config.data)
  key = lambda split: f"{config.data.dataset}_{split}_{len(getattr(splits, split))}"
  state_dir = workdir / STATE_DIR
  if (state_dir / "state.npz").is_file():
    _, model = load(state_dir)
    fit_seconds = json.loads((state_dir / FIT_FILE).read_text())["fit_seconds"]
  else:
    model = classic_models.Classic(config.model.name, classic_models.settings(config.model))
    x = featurize(model, splits.train.images, cache, key("train"))
    start = time.perf_counter()
    model.fit(x, splits.train.labels, seed=config.seed)
    fit_seconds = time.perf_counter() - start
    save(model, config, state_dir)
    (state_dir / FIT_FILE).write_text(json.dumps({"fit_seconds": fit_seconds}))
  accuracy = lambda split: float(np.mean(model.predict(featurize(
      model, getattr(splits, split).images, cache, key(split))) == getattr(splits, split).labels))
  test = {"test_accuracy": accuracy("test")} if evaluate_test else {}
  final = records.final_record(
      kind="classic", best_epoch=None, val_accuracy=accuracy("validation"),
      train_examples=len(splits.train), validation_examples=len(splits.validation),
      test_examples=len(splits.test), strategy="classic", devices=1, processes=1, trials=1,
      train_seconds=fit_seconds, compile_seconds=0.0, **test)
  writer = MetricsWriter(workdir, num_epochs=0)
  try:
    writer.write(1, final)
  finally:
    writer.close()
  return final
