"""MNIST: MLP on pixels (two hidden layers of 1024, dropout, random shifts)."""

import ml_collections

from jaxdigits.config import defaults


def get_config() -> ml_collections.ConfigDict:
  config = defaults()
  config.model.name = "mlp"
  config.model.hidden = (1024, 1024)
  config.model.dropout = 0.2
  config.train.num_epochs = 20
  config.train.learning_rate = 1e-3
  config.train.max_shift = 1
  return config
