"""The Predictor (parameters + apply + preprocessing) and the predict command line.

``python -m jaxdigits.predict --checkpoint=PATH image.png [more.jpg ...] [--json]``

One Predictor serves evaluation, prediction on user images and the demo, so all of them run
the same jitted forward pass on the same preprocessing.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging


ApplyFn = Callable[..., jax.Array]

from jaxdigits.inference.predictor import *  # noqa: F401,F403  (mechanical split; cleaned up next)


def main(argv: Sequence[str] | None = None) -> int:
  # argparse rather than absl flags: flags are process globals, and evaluate/report import
  # this module, so defining flags here would clash with theirs.
  parser = argparse.ArgumentParser(prog="python -m jaxdigits.predict",
                                   description="Recognise the digit in each image file.")
  parser.add_argument("--checkpoint", required=True,
                      help="training workdir or its checkpoints/ folder")
  parser.add_argument("--json", action="store_true", help="print one JSON list instead of lines")
  parser.add_argument("--tta", action="store_true", help=TTA_HELP)
  parser.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
  args = parser.parse_args(argv)
  quiet_libraries()
  try:
    predictor = load(args.checkpoint, tta=args.tta)
    results = predictor.predict(args.images)
  except (checkpoints.CheckpointError, ValueError) as e:
    print(f"jaxdigits.predict: error: {e}", file=sys.stderr)
    return 2
  failed = [r for r in results if isinstance(r, preprocess.ImageError)]
  for error in failed:
    print(f"jaxdigits.predict: error: {error}", file=sys.stderr)
  ok = [r for r in results if isinstance(r, Prediction)]
  if args.json:
    print(json.dumps([r.to_json() for r in ok]))
  else:
    for r in ok:
      top3 = "  ".join(f"{d}:{p:.3f}" for d, p in r.top3)
      print(f"{r.file}: {r.digit} (p={r.probability:.3f})  top3 {top3}")
  return 1 if failed else 0


def run() -> None:
  sys.exit(main())


if __name__ == "__main__":
  run()
