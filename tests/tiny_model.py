"""One small trained MNIST model shared by the evaluate, predict and report tests.

Training takes ~30 s, so the run is made once per pytest session into the session's base
temp folder and reused by every module that asks for it (a marker file says it finished).
"""

from __future__ import annotations

from pathlib import Path

from jaxdigits import config as config_lib, train


def tiny_config(raw_dir: Path, tfds_dir: Path, dataset: str = "mnist"):
  config = config_lib.defaults()
  config.data.dataset = dataset
  config.data.mnist_style = True  # a no-op for MNIST; USPS becomes 28x28
  config.data.raw_dir, config.data.tfds_dir = str(raw_dir), str(tfds_dir)
  config.data.train_limit = 20_000
  config.model.name = "cnn"
  config.model.features = (8, 16)
  config.model.dense = 32
  config.train.num_epochs = 3
  config.train.batch_size = 64
  config.checkpoint.keep = 1
  config.progress_bar = False
  return config


def trained_workdir(tmp_path_factory, raw_dir: Path, tfds_dir: Path,
                    dataset: str = "mnist") -> Path:
  """The workdir of the shared tiny run on ``dataset``, training it on first use."""
  workdir = tmp_path_factory.getbasetemp() / f"tiny_{dataset}_run"
  done = workdir / "DONE"
  if not done.exists():
    train.train_and_evaluate(tiny_config(raw_dir, tfds_dir, dataset), workdir)
    done.touch()
  return workdir
