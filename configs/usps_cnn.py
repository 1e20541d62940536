"""USPS CNN: the MNIST recipe on USPS resized MNIST-style to 28x28, so one model reads both."""

import ml_collections

from jaxdigits.config import defaults


def get_config() -> ml_collections.ConfigDict:
  config = defaults()
  config.data.dataset = "usps"
  config.data.mnist_style = True
  config.model.name = "cnn"
  config.model.features = (16, 32)
  config.model.dense = 256
  config.model.dropout = 0.25
  config.train.num_epochs = 20
  config.train.batch_size = 64
  config.train.learning_rate = 3e-3
  config.train.max_shift = 2
  return config
