"""MNIST all-convolution "M5" (An et al. 2020): five VALID 5x5 conv-BN-ReLU layers (32 to
160 channels, 28x28 → 8x8, no pooling), then the logits straight from 8x8x160, on digits
shifted, rotated and scaled harder than configs/best.py.

~27x the multiply-adds of configs/best.py (38x its step time on a 2-core CPU): a GPU recipe
(H200: 0.75 s per epoch, median, while another run shared the GPU). Seeds for an ensemble,
one after another:

  python -m jaxdigits.sweep --config=configs/m5.py --sweep=configs/sweeps/seeds.py \\
      --workdir=runs/m5 --novmap
  python -m jaxdigits.evaluate --workdir runs/m5/trial_*
"""

import ml_collections

from jaxdigits.config import defaults


def get_config() -> ml_collections.ConfigDict:
  config = defaults()
  config.model.name = "cnn"
  config.model.features = (32, 64, 96, 128, 160)
  config.model.kernel_size = 5
  config.model.padding = "VALID"
  config.model.pool = False
  config.model.dense = 0
  config.model.dropout = 0.0
  config.train.num_epochs = 40
  config.train.batch_size = 128
  config.train.learning_rate = 3e-3
  config.train.max_shift = 3
  config.train.max_rotation = 15.0
  config.train.max_scale = 0.15
  return config
