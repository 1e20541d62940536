"""A damaged or incomplete prepared tfds folder is named, and rebuilt from the raw files
when they are given (issue 18). Works on a copy of the session's prepared USPS."""

import shutil

import pytest

from jaxdigits.data import pipeline
from jaxdigits.errors import DataError


@pytest.fixture
def usps_copy(raw_dir, tfds_dir, tmp_path):
  pipeline.load_tfds("usps", "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir), stop=1)
  shutil.copytree(tfds_dir / "usps", tmp_path / "usps")  # never damage the shared one
  return tmp_path


def _truncate(folder):
  path = next((folder / "usps" / "1.0.0").glob("usps-test.array_record*"))
  path.write_bytes(path.read_bytes()[:20_000])


def _drop_info(folder):
  (folder / "usps" / "1.0.0" / "dataset_info.json").unlink()


@pytest.mark.parametrize("damage, named", [(_truncate, r"usps-test\.array_record\S* cannot be"),
                                           (_drop_info, "dataset_info.json is missing")])
def test_damage_is_named_and_rebuilt_from_raw(usps_copy, raw_dir, monkeypatch, damage, named):
  damage(usps_copy)
  monkeypatch.delenv("JAXDIGITS_RAW_DATA", raising=False)
  with pytest.raises(DataError, match=rf"usps/1\.0\.0 is damaged \({named}.*delete that folder"):
    pipeline.load_tfds("usps", "test", data_dir=str(usps_copy))
  split = pipeline.load_tfds("usps", "test", raw_dir=str(raw_dir), data_dir=str(usps_copy))
  assert len(split) == 2007 and split.images.shape[1:] == (16, 16, 1)
