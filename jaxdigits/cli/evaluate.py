"""Evaluation: batched jitted inference, metrics, error analysis and the evaluate command line.

``python -m jaxdigits.evaluate --workdir=DIR [--dataset=mnist|usps] [--split=test]`` writes
metrics.json, the confusion matrix (text and PNG), a gallery of the worst errors and a
reliability diagram into DIR/eval/<dataset>_<split>/ (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn import metrics as skm


NUM_CLASSES = 10
ECE_BINS = 15
GALLERY_SIZE = 36
SPLITS = ("train", "validation", "test")

from jaxdigits.analysis.evaluate import *  # noqa: F401,F403  (mechanical split; cleaned up next)


def main(argv: Sequence[str] | None = None) -> int:
  # argparse, not absl flags: report imports this module and flags are process globals.
  parser = argparse.ArgumentParser(prog="python -m jaxdigits.evaluate",
                                   description="Evaluate a trained run and analyse its errors.")
  parser.add_argument("--workdir", "--checkpoint", dest="workdir", required=True, nargs="+",
                      help="training workdir or its checkpoints/ folder; several: evaluate "
                           "their ensemble (probabilities averaged)")
  parser.add_argument("--dataset", choices=config_lib.DATASETS,
                      help="dataset to evaluate on (default: the one the model was trained on)")
  parser.add_argument("--split", default="test", choices=SPLITS)
  parser.add_argument("--tta", action="store_true", help=predict.TTA_HELP)
  parser.add_argument("--out", help="output folder (default: WORKDIR/eval/<dataset>_<split>)")
  parser.add_argument("--raw_dir", help="raw data folder (default: $JAXDIGITS_RAW_DATA)")
  parser.add_argument("--data_dir", help="prepared tfds folder (default: $JAXDIGITS_DATA_DIR)")
  args = parser.parse_args(argv)
  quiet_libraries()
  try:
    result, out = evaluate_run(args.workdir, args.dataset, args.split, out_dir=args.out,
                               raw_dir=args.raw_dir, data_dir=args.data_dir, tta=args.tta)
  except (checkpoints.CheckpointError, DataError, ValueError) as e:
    print(f"jaxdigits.evaluate: error: {e}", file=sys.stderr)
    return 2
  pairs = ", ".join(f"{p['true']}→{p['predicted']} ({p['count']})"
                    for p in result["confused_pairs"][:3])
  model = "model" if len(args.workdir) == 1 else f"ensemble of {len(args.workdir)} models"
  tta = ", test-time augmented" if args.tta else ""
  print(f"{result['dataset']} {result['split']} ({result['examples']} images, {model} trained on "
        f"{result['trained_on']}{tta}): accuracy={result['accuracy']:.4f} "
        f"macro_f1={result['macro']['f1']:.4f} log_loss={result['log_loss']:.4f} "
        f"ece={result['expected_calibration_error']:.4f}")
  print(f"most confused: {pairs or 'none'}")
  print(f"outputs in {out}")
  return 0


def run() -> None:
  sys.exit(main())


if __name__ == "__main__":
  run()
