"""Raw file parsing and verification, on generated fixtures and on the real files."""

from __future__ import annotations

import gzip
import hashlib
import shutil

import numpy as np
import pytest

from jaxdigits.data import raw
from jaxdigits.data.raw import DataError


def _idx_bytes(array: np.ndarray) -> bytes:
  header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
  return header + array.astype(np.uint8).tobytes()


def test_parse_idx_generated_images_and_labels():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
  labels = np.arange(5, dtype=np.uint8)
  np.testing.assert_array_equal(raw.parse_idx(_idx_bytes(images)), images)
  np.testing.assert_array_equal(raw.parse_idx(_idx_bytes(labels)), labels)


def test_parse_idx_rejects_truncation_and_bad_magic():
  data = _idx_bytes(np.zeros((3, 4, 4), np.uint8))
  with pytest.raises(DataError, match="truncated"):
    raw.parse_idx(data[:-1], "x.idx")
  with pytest.raises(DataError, match="bad magic"):
    raw.parse_idx(b"\x01\x02" + data[2:], "x.idx")


def test_parse_usps_generated_maps_ink_to_mnist_convention():
  values = np.full(256, -1.0)
  values[:3] = [1.0, 0.0, -1.0]
  text = ("3.0000 " + " ".join(f"{v:.4f}" for v in values) + "\n") * 2
  images, labels = raw.parse_usps(text.encode())
  assert images.shape == (2, 16, 16) and images.dtype == np.uint8
  assert labels.tolist() == [3, 3]
  assert images[0, 0, :3].tolist() == [255, 128, 0]  # ink bright, background black
  assert images[0].sum() == 255 + 128


@pytest.mark.parametrize("text, match", [
    ("3.0 " + "0.5 " * 255, "not a multiple of 257"),
    ("12.0 " + "0.5 " * 256, "labels must be digits"),
    ("3.0 " + "2.5 " * 256, r"\[-1, 1\]"),
    ("3.0 abc " + "0.5 " * 255, "non-numeric"),
])
def test_parse_usps_rejects_malformed_rows(text, match):
  with pytest.raises(DataError, match=match):
    raw.parse_usps(text.encode(), "zip.bad")


def _fake_file(tmp_path, content: bytes, name="f.gz", level=9):
  path = tmp_path / name
  path.write_bytes(gzip.compress(content, compresslevel=level))
  expected = raw.RawFile(name, "https://example.invalid/" + name, hashlib.md5(content).hexdigest(),
                         len(content))
  return path, expected


def test_read_verified_accepts_recompressed_identical_content(tmp_path):
  content = b"digits" * 1000
  path, expected = _fake_file(tmp_path, content, level=1)
  assert raw.read_verified(path, expected, "mnist") == content
  path.write_bytes(gzip.compress(content, compresslevel=9))  # other bytes, same content
  assert raw.read_verified(path, expected, "mnist") == content


def test_read_verified_names_missing_truncated_and_corrupt_files(tmp_path):
  content = b"digits" * 1000
  path, expected = _fake_file(tmp_path, content)
  with pytest.raises(DataError, match=r"missing file .*nope\.gz.*JAXDIGITS_RAW_DATA"):
    raw.read_verified(tmp_path / "nope.gz", expected, "mnist")
  path.write_bytes(gzip.compress(content)[:-20])
  with pytest.raises(DataError, match=r"f\.gz is truncated or not a valid gzip"):
    raw.read_verified(path, expected, "mnist")
  path.write_bytes(gzip.compress(content[:-1]))
  with pytest.raises(DataError, match=r"f\.gz is truncated or padded"):
    raw.read_verified(path, expected, "mnist")
  path.write_bytes(gzip.compress(b"x" + content[1:]))
  with pytest.raises(DataError, match=r"f\.gz has content md5 .* expected"):
    raw.read_verified(path, expected, "mnist")


def test_local_paths_missing_folder_says_how_to_fix(tmp_path):
  with pytest.raises(DataError, match="does not exist.*--config.data.raw_dir"):
    raw.local_paths("mnist", tmp_path / "absent")


def test_real_mnist_files(raw_dir):
  paths = raw.local_paths("mnist", raw_dir)
  train_x, train_y = raw.load_split("mnist", "train", paths)
  test_x, test_y = raw.load_split("mnist", "test", paths)
  assert train_x.shape == (60_000, 28, 28) and test_x.shape == (10_000, 28, 28)
  assert train_x.dtype == np.uint8 and train_x.max() == 255 and train_x.min() == 0
  assert np.bincount(train_y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851,
                                           5949]
  assert np.bincount(test_y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_usps_files(raw_dir):
  paths = raw.local_paths("usps", raw_dir)
  train_x, train_y = raw.load_split("usps", "train", paths)
  test_x, test_y = raw.load_split("usps", "test", paths)
  assert train_x.shape == (7_291, 16, 16) and test_x.shape == (2_007, 16, 16)
  assert len(train_y) == 7_291 and len(test_y) == 2_007
  assert np.bincount(train_y).tolist() == [1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644]
  assert np.bincount(test_y).tolist() == [359, 264, 198, 166, 200, 160, 170, 147, 166, 177]
  # Background (-1) is the commonest value and maps to 0; full ink (1) maps to 255.
  assert np.bincount(train_x.ravel()).argmax() == 0 and train_x.max() == 255


def test_real_file_checksum_error_names_the_file(raw_dir, tmp_path):
  folder = tmp_path / "mnist"
  shutil.copytree(raw_dir / "mnist", folder)
  bad = folder / "t10k-labels-idx1-ubyte.gz"
  content = bytearray(gzip.decompress(bad.read_bytes()))
  content[100] = (content[100] + 1) % 10
  bad.chmod(0o644)
  bad.write_bytes(gzip.compress(bytes(content)))
  with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz has content md5"):
    raw.load_split("mnist", "test", raw.local_paths("mnist", tmp_path))
