"""Command line: ``python -m jaxdigits.main --config=configs/cnn.py --workdir=DIR``.

Config fields can be overridden on the command line, e.g. ``--config.train.num_epochs=3``.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxdigits import checkpoints, config
from jaxdigits.training import parallel
from jaxdigits.training import engine as train
from jaxdigits.data import DataError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics; reruns resume.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # Orbax logs every save at INFO; the progress bar and metrics.jsonl already say what matters.
  logging.set_verbosity(logging.WARNING)
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except (config.ConfigError, DataError, checkpoints.CheckpointError,
          parallel.DistributedError) as e:
    # A user error: one clear line, not a traceback.
    print(f"jaxdigits: error: {e}", file=sys.stderr)
    sys.exit(2)


def run() -> None:
  app.run(main)


if __name__ == "__main__":
  run()
