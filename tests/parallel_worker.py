"""Runs tiny trainings on N simulated CPU devices, in a process of its own.

  python tests/parallel_worker.py DEVICES STRATEGY:WORKDIR:EPOCHS [...]

The device count must be fixed before JAX starts, hence a separate process per count.
"""

import os
import sys

if __name__ == "__main__":
  os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={int(sys.argv[1])}"

from jaxdigits import config as config_lib  # noqa: E402  pylint: disable=g-import-not-at-top
from jaxdigits.training import engine as train

# Small but with every moving part: BatchNorm statistics, random shifts, a global batch.
SMALL = {
    "data.train_limit": 2048, "model.features": (8, 16), "model.dense": 32,
    "model.dropout": 0.0, "train.batch_size": 64, "train.max_shift": 2,
    "train.schedule": "constant", "train.learning_rate": 1e-3, "checkpoint.keep": 1,
    "progress_bar": False,
}


def small_config(strategy: str, epochs: int, **changes):
  config = config_lib.defaults()
  config.model.name = "cnn"
  for field, value in {**SMALL, **changes}.items():
    *section, name = field.split(".")
    (config[section[0]] if section else config)[name] = value
  config.parallel.strategy = strategy
  # Multi-host runs take the coordinator from JAX's usual environment variables.
  config.parallel.distributed = bool(os.environ.get("JAX_COORDINATOR_ADDRESS"))
  config.train.num_epochs = epochs
  return config


def parallel_config(strategy: str, epochs: int):
  """``small_config`` as tests/test_parallel.py compares strategies: with SGD, whose step is
  linear in the gradient. Adam's normalised step turns a last-bit difference in a near-zero
  gradient into a full step of either sign: a pmap checkpoint whose state agreed with the
  single-device one to 1e-8 drifted to 3x the tolerance over one resumed Adam epoch."""
  return small_config(strategy, epochs, **{"train.optimizer": "sgd",
                                           "train.learning_rate": 0.05})


if __name__ == "__main__":
  for job in sys.argv[2:]:
    strategy, workdir, epochs = job.split(":")
    final = train.train_and_evaluate(parallel_config(strategy, int(epochs)), workdir)
    print(job, final, flush=True)
