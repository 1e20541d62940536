"""MNIST: Exact k-nearest neighbours (JAX) on raw pixels."""

import ml_collections

from jaxdigits.config import defaults


def get_config() -> ml_collections.ConfigDict:
  config = defaults()
  config.model.name = "knn"
  config.model.features = "pixels"
  config.model.pca = 0  # exact integer distances on the uint8 pixels
  config.model.k = 3
  return config
