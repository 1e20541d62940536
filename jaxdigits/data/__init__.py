"""Datasets: raw files → tfds builders → in-memory splits → device-resident batches."""

from jaxdigits.data.pipeline import Split, Splits, load_splits, load_tfds
from jaxdigits.data.raw import DataError

__all__ = ["DataError", "Split", "Splits", "load_splits", "load_tfds"]
