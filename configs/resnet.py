"""MNIST: small ResNet (32/64/128 channels, one basic block per stage) on distorted digits.

The space-to-depth stem runs the first stage at 14x14: ~3x cheaper on a CPU.
"""

import ml_collections

from jaxdigits.config import defaults


def get_config() -> ml_collections.ConfigDict:
  config = defaults()
  config.model.name = "resnet"
  config.model.space_to_depth = 2
  config.model.stage_features = (32, 64, 128)
  config.model.blocks_per_stage = 1
  config.train.num_epochs = 10
  config.train.learning_rate = 3e-3
  config.train.max_shift = 2
  config.train.max_rotation = 10.0
  config.train.max_scale = 0.1
  return config
