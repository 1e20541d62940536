"""MNIST: One-vs-rest linear SVM (JAX, hinge loss) on HOG features."""

import ml_collections

from jaxdigits.config import defaults


def get_config() -> ml_collections.ConfigDict:
  config = defaults()
  config.model.name = "linear_svm"
  config.model.features = "hog"
  return config
