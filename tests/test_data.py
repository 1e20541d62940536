"""tfds builders and the split pipeline, on the real files and up to the network boundary."""

from __future__ import annotations

import socket
import time

import ml_collections
import numpy as np
import pytest

from jaxdigits import config as config_lib
from jaxdigits.data import builders, pipeline, raw
from jaxdigits.data.raw import DataError


@pytest.mark.parametrize("dataset, shape, sizes", [
    ("usps", (16, 16, 1), {"train": 7_291, "test": 2_007}),
    ("mnist", (28, 28, 1), {"train": 60_000, "test": 10_000}),
])
def test_builder_prepares_from_raw_files_with_same_content(dataset, shape, sizes, raw_dir,
                                                           tfds_dir):
  builder = builders.prepared_builder(dataset, raw_dir=str(raw_dir), data_dir=str(tfds_dir))
  assert builder.info.file_format.value == "array_record"
  paths = raw.local_paths(dataset, raw_dir)
  for split, size in sizes.items():
    images, labels = builders.read_split(builder, split)
    assert images.shape == (size, *shape) and images.dtype == np.uint8
    raw_images, raw_labels = raw.load_split(dataset, split, paths)
    # tfds reorders examples when it writes them: compare as multisets.
    np.testing.assert_array_equal(np.bincount(labels), np.bincount(raw_labels))
    per_image = lambda x: np.sort(x.reshape(len(x), -1).astype(np.int64).sum(1))
    np.testing.assert_array_equal(per_image(images), per_image(raw_images))


def test_usps_is_a_registered_tfds_builder(raw_dir, tfds_dir):
  import tensorflow_datasets as tfds
  builder = tfds.builder("usps", raw_dir=str(raw_dir), data_dir=str(tfds_dir),
                         file_format="array_record")
  assert isinstance(builder, builders.Usps)
  builder.download_and_prepare()
  assert builder.info.splits["train"].num_examples == 7_291
  assert builder.info.splits["test"].num_examples == 2_007


def test_offline_download_failure_says_how_to_use_local_files(tmp_path, monkeypatch):
  # The network boundary: every connection attempt fails as it does on an offline machine.
  def offline(*args, **kwargs):
    raise OSError("Network is unreachable (simulated offline machine)")
  monkeypatch.setattr(socket.socket, "connect", offline)
  monkeypatch.setattr(socket, "create_connection", offline)
  monkeypatch.delenv(raw.RAW_DATA_ENV, raising=False)
  start = time.perf_counter()
  with pytest.raises(DataError, match=r"could not download.*offline.*JAXDIGITS_RAW_DATA=DIR"):
    builders.prepared_builder("usps", raw_dir=None, data_dir=str(tmp_path))
  assert time.perf_counter() - start < 30  # not tfds' minutes of retries


def test_online_path_downloads_the_public_files_and_verifies_them(raw_dir, tmp_path,
                                                                  monkeypatch):
  # Everything up to the network: the reachability probe passes, and tfds' download
  # manager is handed the public URLs; the "download" serves the real files.
  import tensorflow_datasets as tfds
  requested = []
  monkeypatch.setattr(builders, "_check_reachable", lambda dataset: None)
  local = raw.local_paths("usps", raw_dir)

  def download(self, urls):
    requested.append(dict(urls))
    by_url = {f.url: local[k] for k, f in raw.FILES["usps"].items()}
    return {k: by_url[u] for k, u in urls.items()}

  monkeypatch.setattr(tfds.download.DownloadManager, "download", download)
  builder = builders.prepared_builder("usps", raw_dir=None, data_dir=str(tmp_path))
  assert requested == [{"train": "https://hastie.su.domains/ElemStatLearn/datasets/zip.train.gz",
                        "test": "https://hastie.su.domains/ElemStatLearn/datasets/zip.test.gz"}]
  assert builder.info.splits["train"].num_examples == 7_291


def test_unknown_dataset_is_refused():
  with pytest.raises(DataError, match="unknown dataset 'kmnist'"):
    builders.prepared_builder("kmnist", raw_dir=None, data_dir="/nonexistent")


def _data_config(**overrides) -> ml_collections.ConfigDict:
  data = config_lib.defaults().data
  data.update(overrides)
  return data


def test_splits_carve_a_fixed_validation_from_train(raw_dir, tfds_dir):
  data = _data_config(dataset="usps", raw_dir=str(raw_dir), tfds_dir=str(tfds_dir))
  a, b = pipeline.load_splits(data), pipeline.load_splits(data)
  assert (len(a.train), len(a.validation), len(a.test)) == (6_562, 729, 2_007)
  np.testing.assert_array_equal(a.validation.images, b.validation.images)
  full, _ = builders.read_split(
      builders.prepared_builder("usps", raw_dir=str(raw_dir), data_dir=str(tfds_dir)), "train")
  np.testing.assert_array_equal(a.validation.images, full[-729:])
  np.testing.assert_array_equal(a.train.images, full[:-729])


def test_usps_mnist_style_resize(raw_dir, tfds_dir):
  data = _data_config(dataset="usps", raw_dir=str(raw_dir), tfds_dir=str(tfds_dir),
                      mnist_style=True, train_limit=500)
  splits = pipeline.load_splits(data)
  assert len(splits.train) == 500
  for split in (splits.train, splits.validation, splits.test):
    assert split.images.shape[1:] == (28, 28, 1) and split.images.dtype == np.uint8
  x = splits.test.images[..., 0].astype(np.float64)
  # MNIST convention: the digit's longer side fills 20 pixels, its centre of mass is central.
  ink_rows, ink_cols = (x > 0).any(2), (x > 0).any(1)
  extent = lambda m: m.shape[1] - m[:, ::-1].argmax(1) - m.argmax(1)
  assert np.all(np.maximum(extent(ink_rows), extent(ink_cols)) <= 21)
  assert np.median(np.maximum(extent(ink_rows), extent(ink_cols))) >= 20
  ys, xs = np.mgrid[:28, :28]
  com_y = (x * ys).sum((1, 2)) / x.sum((1, 2))
  com_x = (x * xs).sum((1, 2)) / x.sum((1, 2))
  assert np.abs(com_y - 13.5).max() < 1.5 and np.abs(com_x - 13.5).max() < 1.5


def test_epoch_indices_are_a_seeded_permutation():
  import jax
  a = pipeline.epoch_indices(jax.random.key(0), 1000, 64)
  b = pipeline.epoch_indices(jax.random.key(0), 1000, 64)
  c = pipeline.epoch_indices(jax.random.key(1), 1000, 64)
  assert a.shape == (15, 64)
  np.testing.assert_array_equal(a, b)
  assert len(np.unique(a)) == a.size and not np.array_equal(a, c)
  assert not np.array_equal(a, pipeline.epoch_indices(jax.random.key(0), 1000, 64, epoch=1))
