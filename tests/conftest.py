"""Shared fixtures: the real raw data folder and one prepared tfds folder per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _raw_dir() -> Path | None:
  configured = os.environ.get("JAXDIGITS_RAW_DATA")
  if configured:
    return Path(configured)
  sibling = REPO.parent / "shared" / "data"
  return sibling if sibling.is_dir() else None


def saved_state(workdir: Path, config) -> dict:
  """The latest checkpoint of a run, as numpy arrays: params, opt, batch_stats, step."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxdigits import checkpoints, models  # pylint: disable=g-import-not-at-top
  from jaxdigits.training import state as state_lib
  target = state_lib.create_train_state(jax.random.key(0), models.build(config.model),
                                        state_lib.make_optimizer(config.train, 1),
                                        (28, 28, 1))
  ckpts = checkpoints.Checkpoints(workdir / "checkpoints", config)
  restored = ckpts.restore(ckpts.latest_step(), target)
  ckpts.close()
  return jax.tree.map(np.asarray, {"params": restored.params, "opt": restored.opt_state,
                                   "batch_stats": restored.batch_stats, "step": restored.step})


@pytest.fixture(scope="session")
def raw_dir() -> Path:
  """The real MNIST/USPS raw files (../shared/data or $JAXDIGITS_RAW_DATA).

  CI sets JAXDIGITS_REQUIRE_DATA=1 so that missing data fails instead of skipping.
  """
  path = _raw_dir()
  if path is None or not (path / "mnist").is_dir() or not (path / "usps").is_dir():
    if os.environ.get("JAXDIGITS_REQUIRE_DATA"):
      pytest.fail(f"real data required but not found at {path}; set JAXDIGITS_RAW_DATA")
    pytest.skip("no raw data folder: set JAXDIGITS_RAW_DATA=DIR with DIR/mnist and DIR/usps")
  return path


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory) -> Path:
  """One prepared-datasets folder for the whole session (preparing MNIST takes ~10 s)."""
  return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="session")
def data_env(raw_dir, tfds_dir) -> dict[str, str]:
  """Environment for CLI subprocesses: real raw data, the session's tfds folder."""
  return {**os.environ, "JAXDIGITS_RAW_DATA": str(raw_dir), "JAXDIGITS_DATA_DIR": str(tfds_dir),
          "PYTHONUNBUFFERED": "1"}


# A small but real run: 20,000 MNIST digits, a narrow CNN, 3 epochs of ~1 s.
TINY = {
    "data.train_limit": 20_000,
    "model.features": (8, 16),
    "model.dense": 32,
    "train.num_epochs": 3,
    "train.batch_size": 64,
    "checkpoint.keep": 1,
    "progress_bar": False,
}


def tiny_config(raw_dir: Path, tfds_dir: Path, **changes):
  """The ``TINY`` CNN config on the real data; ``changes`` maps "section.field" → value."""
  from jaxdigits import config as config_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.defaults()
  config.model.name = "cnn"
  for field, value in {**TINY, **changes}.items():
    *section, name = field.split(".")
    (config[section[0]] if section else config)[name] = value
  config.data.raw_dir, config.data.tfds_dir = str(raw_dir), str(tfds_dir)
  return config


@pytest.fixture(scope="session")
def tiny_run(raw_dir, tfds_dir, tmp_path_factory):
  """A ``TINY`` trained run per dataset, shared by the evaluate, predict and report tests.

  ``tiny_run("mnist")`` trains on first use (~30 s); USPS is resized MNIST-style so one
  model shape reads both datasets.
  """
  from jaxdigits.training import engine as train  # pylint: disable=g-import-not-at-top
  runs = {}

  def get(dataset: str = "mnist") -> Path:
    if dataset not in runs:
      config = tiny_config(raw_dir, tfds_dir, **{"data.dataset": dataset,
                                                 "data.mnist_style": True})
      runs[dataset] = tmp_path_factory.mktemp(f"tiny_{dataset}_run")
      train.train_and_evaluate(config, runs[dataset])
    return runs[dataset]

  return get


@pytest.fixture(scope="session")
def tiny_knn_run(raw_dir, tfds_dir, tmp_path_factory):
  """A kNN (k=3, pixels) fitted on 2,000 digits: a classic run in a few seconds.

  ``tiny_knn_run("usps", mnist_style=False)`` reads native 16x16 USPS digits.
  """
  import ml_collections  # pylint: disable=g-import-not-at-top
  from jaxdigits import config as config_lib  # pylint: disable=g-import-not-at-top
  from jaxdigits.training import engine as train  # pylint: disable=g-import-not-at-top
  runs = {}

  def get(dataset: str = "mnist", mnist_style: bool = True) -> Path:
    if (dataset, mnist_style) not in runs:
      config = config_lib.defaults()
      config.model = ml_collections.ConfigDict({"name": "knn", "k": 3})
      config.data.dataset, config.data.mnist_style = dataset, mnist_style
      config.data.raw_dir, config.data.tfds_dir = str(raw_dir), str(tfds_dir)
      config.data.train_limit, config.progress_bar = 2000, False
      runs[dataset, mnist_style] = tmp_path_factory.mktemp(f"knn_{dataset}")
      train.train_and_evaluate(config, runs[dataset, mnist_style])
    return runs[dataset, mnist_style]

  return get
