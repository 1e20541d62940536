"""Splits in memory and device-resident batching.

The digit datasets are small (MNIST is 47 MB as uint8), so after tfds reads them once they
stay on the device and an epoch is a permutation of indices: batches are gathered inside
the jitted train step instead of being fed from Python one by one.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdigits import config as config_lib
from jaxdigits.data import mnist_style as preprocess
from jaxdigits.data import builders, label_fixes, raw, sources

DATA_DIR_ENV = "JAXDIGITS_DATA_DIR"


@dataclasses.dataclass(frozen=True)
class Split:
  images: np.ndarray  # uint8 [N, H, W, 1], bright ink on black
  labels: np.ndarray  # int32 [N]

  def __len__(self) -> int:
    return len(self.labels)


@dataclasses.dataclass(frozen=True)
class Splits:
  train: Split
  validation: Split
  test: Split


def default_data_dir() -> str:
  """Where prepared tfds datasets go: ``$JAXDIGITS_DATA_DIR`` or ~/.cache/jaxdigits/tfds.

  Not tfds' own ~/tensorflow_datasets: a catalog mnist prepared there by TensorFlow is in
  the tfrecord format, which the TensorFlow-free reader cannot open.
  """
  return os.environ.get(DATA_DIR_ENV) or str(Path.home() / ".cache" / "jaxdigits" / "tfds")


def load_tfds(dataset: str, split: str, *, raw_dir: str | None = None,
              data_dir: str | None = None, start: int = 0, stop: int | None = None) -> Split:
  """Examples [start, stop) of one split, as tfds prepares it (from ``raw_dir``, else download).

  tfds shuffles examples when it writes them, so index i is not line i of the raw file; the
  order is fixed, though, so the same indices always give the same examples.
  """
  builder = builders.prepared_builder(dataset, raw_dir=raw.raw_dir_from_env(raw_dir),
                                      data_dir=data_dir or default_data_dir())
  return Split(*builders.read_split(builder, split, start, stop))


def load_splits(data: ml_collections.ConfigDict) -> Splits:
  """Train / validation / test for ``data.dataset``.

  Validation is the last ``data.validation_fraction`` of the official train split: fixed,
  so model selection never depends on the seed, and the test split is only ever reported.
  """
  kw = dict(raw_dir=data.raw_dir, data_dir=data.tfds_dir)
  cut = config_lib.validation_start(data.dataset, data.validation_fraction)
  splits = Splits(train=load_tfds(data.dataset, "train", stop=min(data.train_limit or cut, cut),
                                  **kw),
                  validation=load_tfds(data.dataset, "train", start=cut, **kw),
                  test=load_tfds(data.dataset, "test", **kw))
  if data.get("label_fixes"):  # absent in configs of runs that predate it
    splits = dataclasses.replace(splits, train=fix_labels(splits.train, data))
  if data.mnist_style and splits.train.images.shape[1:3] != (preprocess.MNIST_SIZE,) * 2:
    to28 = lambda s: Split(preprocess.mnist_style_batch(s.images), s.labels)
    splits = Splits(to28(splits.train), to28(splits.validation), to28(splits.test))
  if data.get("extra_train"):  # train only: validation and test stay data.dataset's own
    extra = load_tfds(data.extra_train, "train", **kw)
    if extra.images.shape[1:3] != splits.train.images.shape[1:3]:
      extra = Split(preprocess.mnist_style_batch(extra.images), extra.labels)
    splits = dataclasses.replace(splits, train=Split(
        np.concatenate([splits.train.images, extra.images]),
        np.concatenate([splits.train.labels, extra.labels])))
  return splits


def fix_labels(train: Split, data: ml_collections.ConfigDict) -> Split:
  """``train`` with ``data.label_fixes`` applied by raw row (before any resizing, since rows
  are matched by their raw pixels); validation and test never pass through here."""
  fixes = label_fixes.read(data.label_fixes, config_lib.TRAIN_SIZES[data.dataset])
  raw_images, raw_labels = sources.raw_split(data.dataset, "train", data.raw_dir,
                                             "data.label_fixes")
  rows = sources.source_indices(train.images, train.labels, raw_images, raw_labels)
  images, labels, n = label_fixes.apply(train.images, train.labels, rows, raw_labels, fixes,
                                        data.label_fix_mode, data.label_fixes)
  done = "removed" if data.label_fix_mode == "remove" else "relabelled"
  print(f"data.label_fixes: {done} {n['in_train']} of {n['examples_before']} training examples "
        f"({n['listed'] - n['in_train']} more listed rows are not in this train split and stay "
        f"as they are)", file=sys.stderr, flush=True)
  return Split(images, labels)


def epoch_indices(key: jax.Array, num_examples: int, batch_size: int,
                  epoch: int = 0) -> np.ndarray:
  """Epoch ``epoch``'s shuffle of ``key``'s data order as int32 indices [steps, batch_size];
  the ragged tail is dropped."""
  steps = num_examples // batch_size
  # numpy, seeded by the key's bits and the epoch: jax.random.permutation and fold_in
  # compiled on first use, 0.4 s of configs/fast.py's 12 s.
  seed = [*np.asarray(jax.random.key_data(key)).ravel().tolist(), epoch]
  perm = np.random.default_rng(seed).permutation(num_examples)
  return perm[:steps * batch_size].reshape(steps, batch_size).astype(np.int32)


def normalize(images: jax.Array) -> jax.Array:
  """uint8 → float32 in [0, 1]; done on the device inside the step."""
  return images.astype(jnp.float32) * (1.0 / 255.0)
