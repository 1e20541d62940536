"""Raw dataset files: where they live, how they are verified, how they are parsed.

MNIST comes as gzip'd IDX files, USPS as the ESL text files (``label v1 … v256``).
Checksums are of the *content* (after gunzip): a re-compressed but identical file is
accepted, a truncated or altered one is refused with the file name and the fix.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
from jaxdigits.errors import DataError

RAW_DATA_ENV = "JAXDIGITS_RAW_DATA"




@dataclasses.dataclass(frozen=True)
class RawFile:
  name: str
  url: str
  content_md5: str
  content_bytes: int


_MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
_USPS_URL = "https://hastie.su.domains/ElemStatLearn/datasets/"

FILES: dict[str, dict[str, RawFile]] = {
    "mnist": {
        "train_images": RawFile("train-images-idx3-ubyte.gz", _MNIST_URL + "train-images-idx3-ubyte.gz",
                                "6bbc9ace898e44ae57da46a324031adb", 47_040_016),
        "train_labels": RawFile("train-labels-idx1-ubyte.gz", _MNIST_URL + "train-labels-idx1-ubyte.gz",
                                "a25bea736e30d166cdddb491f175f624", 60_008),
        "test_images": RawFile("t10k-images-idx3-ubyte.gz", _MNIST_URL + "t10k-images-idx3-ubyte.gz",
                               "2646ac647ad5339dbf082846283269ea", 7_840_016),
        "test_labels": RawFile("t10k-labels-idx1-ubyte.gz", _MNIST_URL + "t10k-labels-idx1-ubyte.gz",
                               "27ae3e4e09519cfbb04c329615203637", 10_008),
    },
    "usps": {
        "train": RawFile("zip.train.gz", _USPS_URL + "zip.train.gz",
                         "a2d376ecc766edab27f0c4621f180f99", 14_512_253),
        "test": RawFile("zip.test.gz", _USPS_URL + "zip.test.gz",
                        "ec27c60f11cf4a80de34679dd9108b4d", 2_029_542),
    },
}


def raw_dir_from_env(raw_dir: str | None) -> str | None:
  """The configured raw-data folder, else ``$JAXDIGITS_RAW_DATA``, else None (download)."""
  return raw_dir or os.environ.get(RAW_DATA_ENV) or None


def _fix_hint(dataset: str) -> str:
  names = ", ".join(f.name for f in FILES[dataset].values())
  return (f"Put the original files ({names}) in <raw_dir>/{dataset}/ and point jaxdigits at "
          f"<raw_dir> with --config.data.raw_dir=<raw_dir> or {RAW_DATA_ENV}=<raw_dir>.")


def read_verified(path: str | os.PathLike, expected: RawFile, dataset: str) -> bytes:
  """Returns the decompressed content of ``path`` after checking size and md5."""
  path = Path(path)
  if not path.exists():
    raise DataError(f"{dataset}: missing file {path}. {_fix_hint(dataset)}")
  try:
    with open(path, "rb") as f:
      raw = f.read()
    content = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
  except (OSError, EOFError, gzip.BadGzipFile) as e:
    raise DataError(f"{dataset}: {path} is truncated or not a valid gzip file ({e}). "
                    f"Download it again. {_fix_hint(dataset)}") from e
  if len(content) != expected.content_bytes:
    raise DataError(f"{dataset}: {path} is truncated or padded: {len(content):,} bytes after "
                    f"gunzip, expected {expected.content_bytes:,}. Download it again. "
                    f"{_fix_hint(dataset)}")
  md5 = hashlib.md5(content).hexdigest()
  if md5 != expected.content_md5:
    raise DataError(f"{dataset}: {path} has content md5 {md5}, expected {expected.content_md5}: "
                    f"the file is corrupt or is not {expected.name}. Download it again. "
                    f"{_fix_hint(dataset)}")
  return content


def parse_idx(content: bytes, source: str = "<bytes>") -> np.ndarray:
  """Parses an (uncompressed) IDX file of unsigned bytes into an array of its shape."""
  if len(content) < 4 or content[:2] != b"\x00\x00" or content[2] != 0x08:
    raise DataError(f"{source}: not an IDX file of unsigned bytes (bad magic number).")
  ndim = content[3]
  header = 4 + 4 * ndim
  dims = tuple(int.from_bytes(content[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
  expected = header + int(np.prod(dims))
  if len(content) != expected:
    raise DataError(f"{source}: IDX header says shape {dims} ({expected:,} bytes) but the file "
                    f"has {len(content):,} bytes: it is truncated or corrupt.")
  return np.frombuffer(content, np.uint8, offset=header).reshape(dims)


def parse_usps(content: bytes, source: str = "<bytes>") -> tuple[np.ndarray, np.ndarray]:
  """Parses ESL USPS text into (uint8 images [N,16,16], int labels [N]).

  USPS grey values run from -1 (background) to 1 (ink); they are mapped to MNIST's
  convention, bright ink on black in 0..255.
  """
  try:
    table = np.array(content.split(), dtype=np.float64)
  except ValueError as e:
    raise DataError(f"{source}: USPS file holds a non-numeric value ({e}).") from e
  if table.size == 0 or table.size % 257:
    raise DataError(f"{source}: USPS rows must be a label and 256 values; got {table.size:,} "
                    f"numbers, not a multiple of 257: the file is truncated or corrupt.")
  table = table.reshape(-1, 257)
  labels = table[:, 0]
  if not np.all((labels == np.round(labels)) & (labels >= 0) & (labels <= 9)):
    raise DataError(f"{source}: USPS labels must be digits 0-9.")
  values = table[:, 1:]
  if values.min() < -1.0001 or values.max() > 1.0001:
    raise DataError(f"{source}: USPS grey values must lie in [-1, 1].")
  images = np.round((values + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
  return images.reshape(-1, 16, 16), labels.astype(np.int64)


def load_split(dataset: str, split: str, paths: dict[str, Path]) -> tuple[np.ndarray, np.ndarray]:
  """Reads and verifies one split from ``paths`` (key → file, keys as in ``FILES``)."""
  files = FILES[dataset]
  if dataset == "mnist":
    images = parse_idx(read_verified(paths[f"{split}_images"], files[f"{split}_images"], dataset),
                       str(paths[f"{split}_images"]))
    labels = parse_idx(read_verified(paths[f"{split}_labels"], files[f"{split}_labels"], dataset),
                       str(paths[f"{split}_labels"]))
    return images, labels.astype(np.int64)
  if dataset == "usps":
    return parse_usps(read_verified(paths[split], files[split], dataset), str(paths[split]))
  raise DataError(f"unknown dataset {dataset!r}; known: {sorted(FILES)}")


def local_paths(dataset: str, raw_dir: str | os.PathLike) -> dict[str, Path]:
  """Paths of the raw files under ``raw_dir/dataset`` (or ``raw_dir`` itself)."""
  root = Path(raw_dir).expanduser()
  if not root.is_dir():
    raise DataError(f"raw data folder {root} does not exist. {_fix_hint(dataset)}")
  base = root / dataset if (root / dataset).is_dir() else root
  return {key: base / f.name for key, f in FILES[dataset].items()}
