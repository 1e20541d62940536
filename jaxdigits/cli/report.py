"""Write report.md from measured results.

  python -m jaxdigits.report --workdir=DIR [--cross_workdir=DIR2] [--raw_dir=DIR]
      [--data_dir=DIR]

The run is evaluated afresh on its test split (and, where its input allows, on the other
dataset); ``--cross_workdir`` adds a model trained on the other dataset for the reverse
direction. Every number in the report comes from those evaluations, the run's saved config
and its metrics.jsonl; the prose around them is chosen from the numbers, never edited by hand.
"""

from __future__ import annotations

from absl import flags

from jaxdigits.analysis import report
from jaxdigits.cli import runner


def _define(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("workdir", None, "training workdir of the model reported", flag_values=fv,
                      required=True)
  flags.DEFINE_string("cross_workdir", None, "a run trained on the other dataset, for the "
                      "reverse cross-dataset result", flag_values=fv)
  flags.DEFINE_string("raw_dir", None, "raw data folder (default: $JAXDIGITS_RAW_DATA)",
                      flag_values=fv)
  flags.DEFINE_string("data_dir", None, "prepared tfds folder (default: $JAXDIGITS_DATA_DIR)",
                      flag_values=fv)


def _report(fv: flags.FlagValues, _: list[str]) -> None:
  print(f"wrote {report.write_report(fv.workdir, fv.cross_workdir, fv.raw_dir, fv.data_dir)}")


COMMAND = runner.Command("report", __doc__, _define, _report)
main = COMMAND.main
run = COMMAND.run

if __name__ == "__main__":
  run()
