"""MNIST: Random forest (scikit-learn) on raw pixels."""

import ml_collections

from jaxdigits.config import defaults


def get_config() -> ml_collections.ConfigDict:
  config = defaults()
  config.model.name = "random_forest"
  config.model.features = "pixels"
  config.model.n_estimators = 200
  return config
