"""MNIST: Small ResNet (16/32/64 channels, one basic block per stage, random shifts)."""

import ml_collections

from jaxdigits.config import defaults


def get_config() -> ml_collections.ConfigDict:
  config = defaults()
  config.model.name = "resnet"
  config.model.stage_features = (16, 32, 64)
  config.model.blocks_per_stage = 1
  config.train.num_epochs = 10
  config.train.learning_rate = 3e-3
  config.train.max_shift = 2
  return config
