"""MNIST most accurate: a deeper CNN trained longer on distorted digits.

An ensemble is several seeds evaluated together (README, "Speed and accuracy"); the seeds
sweep trains eight as one vmapped program (on an H200: ~1 s per epoch for all eight):

  python -m jaxdigits.sweep --config=configs/best.py --sweep=configs/sweeps/seeds.py \\
      --workdir=runs/best
  python -m jaxdigits.evaluate --workdir runs/best/trial_* --tta

``--tta`` averages each model over 17 distorted views of every digit (test-time
augmentation, views chosen on validation: benchmarks/tta.py). Every epoch is checked on
validation and the checkpoint best on validation is the one tested; the test split chooses
nothing.
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
