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
