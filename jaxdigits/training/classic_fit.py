"""Fitting and evaluating classic models (kNN, SVMs, random forest) like the Flax trainer does.

``train.train_and_evaluate`` hands any ``config.model.name`` in ``models.CLASSIC`` here. The
fitted state goes to ``WORKDIR/classic/state.npz`` (arrays only, loaded without pickle) with
the config as ``config.json``; ``metrics.jsonl`` gets the same final record as a Flax run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from jaxdigits.models import features as features_lib
from jaxdigits.data import pipeline
from jaxdigits.training.metrics_writer import MetricsWriter
from jaxdigits.models import classic as classic_models
from jaxdigits.models.classic import STATE_DIR, featurize, load, save

def fit_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path, *,
                     cache: features_lib.FeatureCache | None = None,
                     evaluate_test: bool = True) -> dict[str, Any]:
  """Fits on the train split, reports validation and (unless ``evaluate_test`` is False, as
  for sweep trials) test accuracy; refits only if no saved state exists (a classic fit has
  no epochs to resume)."""
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  splits = pipeline.load_splits(config.data)
  key = lambda split: f"{config.data.dataset}_{split}_{len(getattr(splits, split))}"
  state_dir = workdir / STATE_DIR
  if (state_dir / "state.npz").is_file():
    _, model = load(state_dir)
    fit_seconds = json.loads((state_dir / "fit.json").read_text())["fit_seconds"]
  else:
    model = classic_models.Classic(config.model.name, classic_models.settings(config.model))
    x = featurize(model, splits.train.images, cache, key("train"))
    start = time.perf_counter()
    model.fit(x, splits.train.labels, seed=config.seed)
    fit_seconds = time.perf_counter() - start
    save(model, config, state_dir)
    (state_dir / "fit.json").write_text(json.dumps({"fit_seconds": fit_seconds}))
  accuracy = lambda split: float(np.mean(model.predict(featurize(
      model, getattr(splits, split).images, cache, key(split))) == getattr(splits, split).labels))
  writer = MetricsWriter(workdir, total_steps=1, initial_step=1, progress_bar=False)
  try:
    final = {"best_epoch": None, "val_accuracy": accuracy("validation"),
             "fit_seconds": fit_seconds,
             "train_examples": len(splits.train), "validation_examples": len(splits.validation),
             "test_examples": len(splits.test), "strategy": "classic", "devices": 1,
             "processes": 1}
    if evaluate_test:
      final["test_accuracy"] = accuracy("test")
    writer.write(1, final)
  finally:
    writer.close()
  return final
