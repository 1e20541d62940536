"""Hyperparameter sweeps: grid or random search, picked on validation, resumable.

  python -m jaxdigits.sweep --config=configs/cnn.py --sweep=configs/sweeps/cnn_lr.py \\
      --workdir=runs/sweep

Every trial is a normal training run in ``WORKDIR/trial_NNN`` (its own checkpoints and
metrics.jsonl, resumable, loadable). Trials that differ only in numeric hyperparameters
train together as one vmapped program. The best trial is chosen on validation accuracy;
only that one is evaluated on test. Writes WORKDIR/results.csv and two plots.
"""

from __future__ import annotations

from absl import flags

from jaxdigits.cli import runner
from jaxdigits.sweeps import runner as sweeps
from jaxdigits.sweeps import spec


def _define(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("sweep", None, "sweep definition file (configs/sweeps/*.py)",
                      flag_values=fv, required=True)
  flags.DEFINE_string("workdir", None, "sweep directory; a trial per subfolder; reruns resume",
                      flag_values=fv, required=True)
  flags.DEFINE_boolean("vmap", True, "train trials that differ only in numeric "
                       "hyperparameters as one vmapped program (--novmap: one by one)",
                       flag_values=fv)


def _sweep(fv: flags.FlagValues, _: list[str]) -> None:
  sweeps.run_sweep(fv.config, spec.load_sweep(fv.sweep), fv.workdir, vmap=fv.vmap)


COMMAND = runner.Command("sweep", __doc__, _define, _sweep, config="base training config file",
                         lock_config=False)
main = COMMAND.main
run = COMMAND.run

if __name__ == "__main__":
  run()
