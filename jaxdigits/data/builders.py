"""tensorflow-datasets builders for MNIST (the catalog's) and USPS (ours).

Both read either files downloaded by tfds (online) or a local raw-file folder (offline),
and both verify the files' content checksums with ``raw.read_verified``. Examples are
yielded as PIL images so that preparing needs no TensorFlow: the datasets are written
as array_record and read back with ``as_data_source``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import sys
import urllib.parse
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image
from tensorflow_datasets.image_classification import mnist as tfds_mnist

from jaxdigits.data import raw


class _RawFileBuilder:
  """Mixin: split generators over verified raw files, local or downloaded."""

  def __init__(self, *, raw_dir: str | os.PathLike | None = None, **kwargs):
    self._raw_dir = raw_dir
    super().__init__(**kwargs)

  def _split_generators(self, dl_manager):
    if self._raw_dir:
      paths = raw.local_paths(self.name, self._raw_dir)
    else:
      paths = dl_manager.download({k: f.url for k, f in raw.FILES[self.name].items()})
    return [tfds.core.SplitGenerator(name=split, gen_kwargs=dict(split=split, paths=paths))
            for split in ("train", "test")]

  def _generate_examples(self, split, paths):
    images, labels = raw.load_split(self.name, split, paths)
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {"image": Image.fromarray(image), "label": int(label)}


class Mnist(_RawFileBuilder, tfds_mnist.MNIST, skip_registration=True):
  """The catalog's ``mnist`` (same name, version and features), TensorFlow-free."""

  name = "mnist"


class Usps(_RawFileBuilder, tfds.core.GeneratorBasedBuilder):
  """USPS handwritten zip-code digits (Hull 1994), the ESL copy: 7,291 train, 2,007 test."""

  name = "usps"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "ESL zip.train/zip.test, ink mapped to MNIST's 0..255 convention."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=("USPS digits, 16x16 deslanted and size-normalized, as distributed with "
                     "The Elements of Statistical Learning. Grey values in [-1, 1] are mapped "
                     "to uint8 with bright ink on black, like MNIST."),
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(16, 16, 1)),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
        homepage="https://hastie.su.domains/ElemStatLearn/data.html",
    )


BUILDERS = {"mnist": Mnist, "usps": Usps}


def _offline_error(dataset: str, cause: Exception) -> raw.DataError:
  files = ", ".join(f.name for f in raw.FILES[dataset].values())
  return raw.DataError(
      f"{dataset}: could not download the dataset ({type(cause).__name__}: {cause}). If this "
      f"machine is offline, put the raw files ({files}) in DIR/{dataset}/ and run with "
      f"{raw.RAW_DATA_ENV}=DIR or --config.data.raw_dir=DIR.")


def _check_reachable(dataset: str, timeout: float = 5.0) -> None:
  """Fails fast when the dataset's host cannot be reached.

  tfds retries a failed connection 10 times with exponential back-off, about 3.5 minutes
  before it gives up; an offline user should hear at once how to use local files instead.
  """
  url = urllib.parse.urlparse(next(iter(raw.FILES[dataset].values())).url)
  try:
    socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
  except OSError as e:
    raise _offline_error(dataset, e) from e


def prepared_builder(dataset: str, *, raw_dir: str | None, data_dir: str) -> tfds.core.DatasetBuilder:
  """Returns the builder for ``dataset`` with its array_record files prepared in ``data_dir``."""
  if dataset not in BUILDERS:
    raise raw.DataError(f"unknown dataset {dataset!r}; known: {sorted(BUILDERS)}")
  builder = BUILDERS[dataset](raw_dir=raw_dir, data_dir=data_dir, file_format="array_record")
  damage = _damage(builder)
  if damage is None and builder.is_prepared():
    return builder
  if damage is not None:
    folder = Path(builder.data_dir)
    if not raw_dir:
      raise raw.DataError(f"{dataset}: the prepared dataset in {folder} is damaged ({damage}); "
                          f"delete that folder to prepare it again, or give the raw files with "
                          f"{raw.RAW_DATA_ENV}=DIR or --config.data.raw_dir=DIR to rebuild it")
    print(f"{dataset}: the prepared dataset in {folder} is damaged ({damage}); rebuilding it",
          file=sys.stderr, flush=True)
    # Derived data only: the raw files, checksum-verified, rebuild all of it.
    shutil.rmtree(folder)
    builder = BUILDERS[dataset](raw_dir=raw_dir, data_dir=data_dir, file_format="array_record")
  if raw_dir:
    # Named before tfds starts its progress bars, so the error is all a user reads.
    missing = [p for p in raw.local_paths(dataset, raw_dir).values() if not p.exists()]
    if missing:
      raise raw.DataError(f"{dataset}: missing file {missing[0]}. {raw._fix_hint(dataset)}")  # pylint: disable=protected-access
    _prepare(builder, f"{dataset}: preparing it once from the raw files in {raw_dir}")
    return builder
  _check_reachable(dataset)
  try:
    _prepare(builder, f"{dataset}: downloading and preparing it once")
  except raw.DataError:
    raise
  except Exception as e:  # tfds wraps network failures in many types; name the way out.
    raise _offline_error(dataset, e) from e
  return builder


def _damage(builder: tfds.core.DatasetBuilder) -> str | None:
  """What is wrong with an existing prepared folder (None: absent or whole).

  tfds trusts any folder it finds: without dataset_info.json it fails with "splits is empty",
  and a truncated array_record file fails deep in Riegeli naming no file.
  """
  folder = Path(builder.data_dir)
  if not folder.is_dir() or not any(folder.iterdir()):
    return None
  if not (folder / "dataset_info.json").is_file():
    return "dataset_info.json is missing"
  for split in ("train", "test"):
    try:
      source = builder.as_data_source(split=split)
      # The first and the last record: a truncated file fails on its footer or its tail.
      source.__getitems__([0, len(source) - 1])
    except Exception as e:  # pylint: disable=broad-except  # any failure here is damage
      files = sorted(p.name for p in folder.glob(f"*-{split}.array_record*")) or [split]
      return f"{files[0]} cannot be read: {type(e).__name__}"
  return None


def _prepare(builder: tfds.core.DatasetBuilder, message: str) -> None:
  # One line instead of tfds' four progress bars, which outlive the step and clutter the run.
  print(f"{message} into {builder.data_dir} ...", file=sys.stderr, flush=True)
  tfds.display_progress_bar(False)
  with contextlib.redirect_stdout(io.StringIO()):  # tfds prints its own two-line banner
    builder.download_and_prepare()


def read_split(builder: tfds.core.DatasetBuilder, split: str, start: int = 0,
               stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Reads examples [start, stop) of a prepared split: uint8 images [N,H,W,1], int32 labels."""
  source = builder.as_data_source(split=split)
  examples = source.__getitems__(range(*slice(start, stop).indices(len(source))))
  images = np.stack([e["image"] for e in examples])
  labels = np.fromiter((e["label"] for e in examples), np.int32, len(examples))
  return images, labels
