"""Hyperparameter sweeps on an Optuna study: grid, random, TPE or CMA-ES, with pruning.

  python -m jaxdigits.sweep --config=configs/cnn.py --sweep=configs/sweeps/cnn_lr.py \\
      --workdir=runs/sweep

Every trial is a normal training run in ``WORKDIR/trial_NNN`` (its own checkpoints and
metrics.jsonl, resumable, loadable). The study lives in WORKDIR/study.journal (or
--storage, a database URL): the same command run in several processes or on several
machines sharing WORKDIR works on one study, and a rerun resumes it. Trials that differ only
in numeric hyperparameters train together as one vmapped program. The best trial is chosen
on validation accuracy; only that one is evaluated on test. Writes WORKDIR/results.csv and
Optuna's plots.
"""

from __future__ import annotations

from absl import flags

from jaxdigits.cli import runner
from jaxdigits.sweeps import runner as sweeps
from jaxdigits.sweeps import spec


def _define(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("sweep", None, "sweep definition file (configs/sweeps/*.py)",
                      flag_values=fv, required=True)
  flags.DEFINE_string("workdir", None, "sweep directory (shared by every worker); a trial per "
                      "subfolder; reruns resume", flag_values=fv, required=True)
  flags.DEFINE_string("storage", None, "Optuna storage URL of the study (e.g. "
                      "postgresql://user:pass@host/db) instead of WORKDIR/study.journal",
                      flag_values=fv)
  flags.DEFINE_boolean("vmap", True, "train trials that differ only in numeric "
                       "hyperparameters as one vmapped program (--novmap: one by one)",
                       flag_values=fv)
  flags.DEFINE_integer("group_size", 16, "most trials a worker asks at once to train as one "
                       "vmapped program (grids, and spaces of vmappable fields only)",
                       lower_bound=1, flag_values=fv)


def _sweep(fv: flags.FlagValues, _: list[str]) -> None:
  sweeps.run_sweep(fv.config, spec.load_sweep(fv.sweep), fv.workdir, vmap=fv.vmap,
                   storage=fv.storage, group_size=fv.group_size)


COMMAND = runner.Command("sweep", __doc__, _define, _sweep, config="base training config file",
                         lock_config=False)
main = COMMAND.main
run = COMMAND.run

if __name__ == "__main__":
  run()
