"""Every model x feature combination on the same splits, in one table.

  python -m jaxdigits.compare --dataset=mnist [--out=runs/compare_mnist] [--only=knn_pixels,...]
      [--train_limit=N] [--epochs=N]

Each entry trains (or resumes, or reloads) in ``OUT/<entry>/``, then is timed predicting the
test split. Writes ``table.md``, ``table.csv`` and ``accuracy.png`` into OUT: accuracy, macro
F1, train seconds (fit time, or the sum of epoch times), predict microseconds per image (once
compiled / loaded).
"""

from __future__ import annotations

from absl import flags

from jaxdigits import config as config_lib
from jaxdigits.analysis import compare
from jaxdigits.cli import runner


def _define(fv: flags.FlagValues) -> None:
  flags.DEFINE_enum("dataset", "mnist", config_lib.DATASETS, "dataset to compare on",
                    flag_values=fv)
  flags.DEFINE_string("out", None, "output folder (default: runs/compare_<dataset>)",
                      flag_values=fv)
  flags.DEFINE_list("only", [], f"comma-separated entries (default: all of "
                    f"{', '.join(compare.ENTRIES)})", flag_values=fv)
  flags.DEFINE_integer("train_limit", 0, "train on the first N examples (0: all)", lower_bound=0,
                       flag_values=fv)
  flags.DEFINE_integer("epochs", 0, "override the Flax models' epochs (0: each config's)",
                       lower_bound=0, flag_values=fv)


def _compare(fv: flags.FlagValues, _: list[str]) -> None:
  compare.compare(fv.dataset, fv.out or f"runs/compare_{fv.dataset}", fv.only, fv.train_limit,
                  fv.epochs)


COMMAND = runner.Command("compare", __doc__, _define, _compare)
main = COMMAND.main
run = COMMAND.run

if __name__ == "__main__":
  run()
