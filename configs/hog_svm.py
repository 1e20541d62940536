"""MNIST: RBF SVM (scikit-learn) on HOG features."""

import ml_collections

from jaxdigits.config import defaults


def get_config() -> ml_collections.ConfigDict:
  config = defaults()
  config.model.name = "svm"
  config.model.features = "hog"
  config.model.C = 10.0
  return config
