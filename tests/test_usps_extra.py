"""data.extra_train: another dataset's train split joins the training split only."""

from __future__ import annotations

import numpy as np
import pytest

from jaxdigits import config as config_lib
from jaxdigits.data import pipeline
from jaxdigits.errors import ConfigError


def _fake_tfds(dataset, split, *, start=0, stop=None, **_):
  # Each image is filled with a code naming its dataset and split, so the test can tell
  # where every example of every split came from; USPS stays 16x16, MNIST 28x28.
  size, n = {"usps": (16, 40), "mnist": (28, 30)}[dataset]
  n = n if split == "train" else 12
  code = {("usps", "train"): 10, ("usps", "test"): 20, ("mnist", "train"): 30,
          ("mnist", "test"): 40}[(dataset, split)]
  images = np.full((n, size, size, 1), code, np.uint8)
  images[:, size // 2, size // 2] = 255  # some ink, for the MNIST-style resize
  labels = (np.arange(n) % 10).astype(np.int32)
  return pipeline.Split(images[start:stop], labels[start:stop])


def _codes(split: pipeline.Split) -> list[int]:
  return sorted({int(np.median(image)) for image in split.images})


def test_extra_train_is_appended_to_train_only(monkeypatch):
  monkeypatch.setattr(pipeline, "load_tfds", _fake_tfds)
  monkeypatch.setitem(config_lib.TRAIN_SIZES, "usps", 40)  # where validation is cut
  data = config_lib.defaults().data
  data.update(dataset="usps", mnist_style=True, validation_fraction=0.25)
  plain = pipeline.load_splits(data)
  data.extra_train = "mnist"
  extra = pipeline.load_splits(data)
  assert (len(plain.train), len(plain.validation), len(plain.test)) == (30, 10, 12)
  assert (len(extra.train), len(extra.validation), len(extra.test)) == (60, 10, 12)
  # USPS's own training examples come first, unchanged, then all 30 of MNIST's train split.
  np.testing.assert_array_equal(extra.train.images[:30], plain.train.images)
  assert extra.train.images.shape[1:] == (28, 28, 1)
  np.testing.assert_array_equal(extra.train.labels[30:], np.arange(30) % 10)
  for name in ("validation", "test"):  # untouched: no MNIST image and the same USPS ones
    np.testing.assert_array_equal(getattr(extra, name).images, getattr(plain, name).images)
  assert 30 not in _codes(extra.validation) + _codes(extra.test)
  assert 40 not in _codes(extra.train)  # MNIST's test split is never read


@pytest.mark.parametrize("changes", [{"extra_train": "usps"},  # the dataset itself
                                     {"extra_train": "emnist"},
                                     {"extra_train": "mnist", "mnist_style": False}])
def test_extra_train_refusals_name_the_field(changes):
  config = config_lib.defaults()
  config.data.dataset = "usps"
  config.data.mnist_style = True
  config.data.update(changes)
  with pytest.raises(ConfigError, match="data.extra_train"):
    config_lib.validate(config)


def test_extra_train_default_is_none_and_valid():
  config = config_lib.defaults()
  assert config.data.extra_train is None
  config.data.update(dataset="usps", mnist_style=True, extra_train="mnist")
  config_lib.validate(config)
