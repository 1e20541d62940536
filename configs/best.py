"""MNIST most accurate: a deeper CNN trained longer on distorted digits.

Train several seeds and evaluate them together for the ensemble (README, "Speed and
accuracy"):

  for s in 0 1 2 3 4; do python -m jaxdigits.main --config=configs/best.py \\
      --config.seed=$s --workdir=runs/best/$s; done
  python -m jaxdigits.evaluate --workdir runs/best/0 runs/best/1 runs/best/2 runs/best/3 runs/best/4

Every epoch is checked on validation and the checkpoint best on validation is the one
tested; the test split chooses nothing.
"""

import ml_collections

from jaxdigits.config import defaults


def get_config() -> ml_collections.ConfigDict:
  config = defaults()
  config.model.name = "cnn"
  config.model.space_to_depth = 2  # 14x14x4 input: the two conv blocks run at 14x14 and 7x7
  config.model.features = (32, 64)
  config.model.convs_per_block = 2
  config.model.dense = 256
  config.model.dropout = 0.3
  config.train.num_epochs = 30
  config.train.batch_size = 128
  config.train.learning_rate = 3e-3
  config.train.max_shift = 2
  config.train.max_rotation = 10.0
  config.train.max_scale = 0.1
  return config
