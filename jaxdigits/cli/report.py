"""report.md from measured results: ``python -m jaxdigits.report --workdir=DIR``.

The run is evaluated afresh on its test split (and, where its input allows, on the other
dataset); ``--cross_workdir`` adds a model trained on the other dataset for the reverse
direction. Every number in the report comes from those evaluations, the run's saved config
and its metrics.jsonl; the prose around them is chosen from the numbers, never edited by hand.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence


NAMES = {"mnist": "MNIST", "usps": "USPS"}

from jaxdigits.analysis.report import *  # noqa: F401,F403  (mechanical split; cleaned up next)


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m jaxdigits.report",
                                   description="Write report.md from measured results.")
  parser.add_argument("--workdir", required=True, help="training workdir of the model reported")
  parser.add_argument("--cross_workdir",
                      help="a run trained on the other dataset, for the reverse cross-dataset "
                           "result")
  parser.add_argument("--raw_dir", help="raw data folder (default: $JAXDIGITS_RAW_DATA)")
  parser.add_argument("--data_dir", help="prepared tfds folder (default: $JAXDIGITS_DATA_DIR)")
  args = parser.parse_args(argv)
  quiet_libraries()
  try:
    path = write_report(args.workdir, args.cross_workdir, args.raw_dir, args.data_dir)
  except (checkpoints.CheckpointError, DataError, ValueError) as e:
    print(f"jaxdigits.report: error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {path}")
  return 0


def run() -> None:
  sys.exit(main())


if __name__ == "__main__":
  run()
