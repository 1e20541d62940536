"""MNIST: Logistic regression on pixels."""

import ml_collections

from jaxdigits.config import defaults


def get_config() -> ml_collections.ConfigDict:
  config = defaults()
  config.model.name = "linear"
  config.train.num_epochs = 10
  config.train.learning_rate = 1e-3
  return config
