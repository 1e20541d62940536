"""How well a model's not-a-digit detector refuses non-digits and keeps digits.

  JAXDIGITS_RAW_DATA=DIR python benchmarks/ood.py [--checkpoint=BUNDLE] [--nondigits=4000]
  JAXDIGITS_RAW_DATA=DIR python benchmarks/ood.py --smoke

Scores the MNIST TEST digits (all 10,000) and HELD-OUT generated non-digits
(``nondigits.generate(split="heldout", seed=1)``: fonts, seeds and about a third of the kinds
the detector never saw) with the bundle's detector at its stored threshold (chosen on
validation digits when it was fitted), and prints: test digits refused; non-digits caught,
per family and on the never-seen kinds alone; USPS test digits (restyled to MNIST's 28x28:
digits written elsewhere) refused; validation digits refused (the calibration); and for
comparison the classifier's max-softmax with a threshold refusing as many validation digits.
Then the cost per image of the score, one image at a time and in batches of 256. Last line:
``digits_rejected_pct=… nondigits_caught_pct=… threshold=… val_digits_rejected_pct=…
unseen_caught_pct=… usps_rejected_pct=… msp_caught_pct=… us_per_image=… ms_single=…``.
``--smoke``: 300 digits and 200 non-digits.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import jaxdigits
from jaxdigits.analysis import evaluate
from jaxdigits.data import nondigits


def _pct(x: np.ndarray) -> float:
  return 100 * float(np.mean(x))


def _cost(detector, images: np.ndarray) -> tuple[float, float]:
  """(microseconds per image in batches of 256, milliseconds for one image alone)."""
  batch = images[:256]
  detector.scores(batch), detector.scores(batch[:1])  # compile both sizes
  t = time.perf_counter()
  for _ in range(5):
    detector.scores(batch)
  per_image = (time.perf_counter() - t) / (5 * len(batch)) * 1e6
  t = time.perf_counter()
  for _ in range(50):
    detector.scores(batch[:1])
  return per_image, (time.perf_counter() - t) / 50 * 1e3


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--checkpoint", default=None, help="a bundle or run (default: shipped)")
  parser.add_argument("--nondigits", type=int, default=4000)
  parser.add_argument("--smoke", action="store_true")
  args = parser.parse_args()
  limit, count = (300, 200) if args.smoke else (None, args.nondigits)
  predictor = jaxdigits.load(args.checkpoint)
  detector = predictor.detector
  if detector is None:
    raise SystemExit(f"{args.checkpoint or 'the shipped bundle'} carries no not-a-digit "
                     f"detector: fit one with python -m jaxdigits.ood")
  th = detector.threshold
  test = evaluate.load_eval_split(predictor, "mnist", "test").images[:limit]
  val = evaluate.load_eval_split(predictor, "mnist", "validation").images[:limit]
  usps = evaluate.load_eval_split(predictor, "usps", "test").images[:limit]
  others, family = nondigits.generate(count, 1, "heldout")
  unseen, _ = nondigits.generate(max(count // 4, 40), 2, "heldout", unseen_only=True)
  caught = detector.scores(others) > th
  for i, name in enumerate(nondigits.FAMILIES):
    print(f"{name}: {_pct(caught[family == i]):.1f}% of {int((family == i).sum())} caught")
  val_msp = predictor.probabilities(val).max(-1)
  msp_th = np.quantile(val_msp, float(np.mean(detector.scores(val) > th)))
  msp_caught = predictor.probabilities(others).max(-1) < msp_th
  per_image, single = _cost(detector, others)
  figures = {
      "digits_rejected_pct": f"{_pct(detector.scores(test) > th):.2f}",
      "nondigits_caught_pct": f"{_pct(caught):.2f}",
      "threshold": f"{th:.4f}",
      "val_digits_rejected_pct": f"{_pct(detector.scores(val) > th):.2f}",
      "unseen_caught_pct": f"{_pct(detector.scores(unseen) > th):.2f}",
      "usps_rejected_pct": f"{_pct(detector.scores(usps) > th):.2f}",
      "msp_caught_pct": f"{_pct(msp_caught):.2f}",
      "us_per_image": f"{per_image:.1f}", "ms_single": f"{single:.2f}",
  }
  print(f"test digits {len(test)}, validation digits {len(val)}, USPS {len(usps)}, "
        f"held-out non-digits {len(others)} (+{len(unseen)} unseen kinds)")
  print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
  main()
