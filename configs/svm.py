"""MNIST: RBF SVM (scikit-learn) on the first 50 principal components of the pixels."""

import ml_collections

from jaxdigits.config import defaults


def get_config() -> ml_collections.ConfigDict:
  config = defaults()
  config.model.name = "svm"
  config.model.features = "pixels"
  config.model.pca = 50
  config.model.C = 10.0
  return config
