"""Fits the rule by which ``numbers`` reads some ink as one digit or as two.

    JAXDIGITS_RAW_DATA=DIR python benchmarks/fit_number_cuts.py [--singles=2000] [--pairs=1000]
                                                               [--smoke]

Composes single digits and touching pairs (as benchmarks/read_numbers.py does) from the
shipped model's validation digits (the last 6,000 of MNIST train; test stays unseen), finds
each one's best cut as ``numbers`` does, and fits a logistic regression on (mean largest
logit of the two pieces, largest logit of the whole, width / height). A wrong cut weighs
``--cut-cost`` times a missed one: the composed numbers hold ~13 digits apart for each
touching pair. Prints the fitted constants for numbers.py and the share of singles cut and
of pairs left whole, under the fit and under the constants numbers.py holds now. Last line:
``pieces=… aspect=… bias=… singles_cut=… pairs_whole=…`` (the fit). ``--smoke``: 200 singles
and 100 pairs.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.linear_model import LogisticRegression

import jaxdigits
import read_numbers
from jaxdigits.data import load_tfds
from jaxdigits.inference import numbers, preprocess


def features(model, canvas: np.ndarray, probabilities: bool
             ) -> tuple[float, float, float] | None:
  """(pieces, whole, aspect) of the best cut of a canvas holding one group, else None (the
  group is narrow, or no cut leaves two digit-high pieces, so no rule is asked).
  ``probabilities``: log-softmax in place of logits."""
  ink = preprocess.to_ink(canvas)
  blobs, height = numbers._components(ink)  # pylint: disable=protected-access
  groups = numbers._merge(  # pylint: disable=protected-access
      [b for b in blobs if max(b.height, b.width) >= numbers._SPECK * height], height)
  if len(groups) != 1 or groups[0].width < numbers._MIN_CUT_ASPECT * groups[0].height:
    return None
  whole = groups[0]
  cuts = [(l, r) for l, r in numbers._cuts(whole, ink)
          if min(l.height, r.height) >= numbers._SMALL * whole.height]
  if not cuts:
    return None
  reader = numbers._Reader(model, ink)  # pylint: disable=protected-access
  logits = np.stack([z for _, z in reader.classify([whole, *(p for c in cuts for p in c)])])
  if probabilities:
    logits = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  top = logits.max(-1).tolist()
  pieces = max((top[1 + 2 * i] + top[2 + 2 * i]) / 2 for i in range(len(cuts)))
  return pieces, top[0], whole.width / whole.height


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--singles", type=int, default=2000)
  parser.add_argument("--pairs", type=int, default=1000)
  parser.add_argument("--cut-cost", type=float, default=13.0)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--probabilities", action="store_true",
                      help="fit _PROBABILITY_RULE (on log-softmax) instead of _LOGIT_RULE")
  parser.add_argument("--smoke", action="store_true", help="--singles=200 --pairs=100")
  args = parser.parse_args()
  if args.smoke:
    args.singles, args.pairs = 200, 100
  data = load_tfds("mnist", "train", start=54_000)
  images, rng = np.asarray(data.images)[..., 0], np.random.default_rng(args.seed)
  model = jaxdigits.load()
  rows, kinds = [], []
  for kind, count in ((1, args.singles), (2, args.pairs)):
    for _ in range(count):
      canvas = read_numbers.compose(list(images[rng.integers(0, len(images), kind)]), rng,
                                    touching=kind == 2)
      f = features(model, canvas, args.probabilities)
      if f is not None:
        rows.append(f)
        kinds.append(kind)
  x, y = np.array(rows), np.array(kinds) == 2
  fit = LogisticRegression(class_weight={False: args.cut_cost, True: 1.0}, max_iter=1000)
  fit.fit(x, y)
  (w_pieces, w_whole, w_aspect), bias = fit.coef_[0], fit.intercept_[0]
  scale = -w_whole  # numbers.py writes the rule with the whole's logit at weight -1
  rule = (w_pieces / scale, w_aspect / scale, -bias / scale)
  name = "_PROBABILITY_RULE" if args.probabilities else "_LOGIT_RULE"
  print(f"asked: {int((~y).sum())} of {args.singles} singles, {int(y.sum())} of "
        f"{args.pairs} pairs")
  print(f"{name} = ({rule[0]:.2f}, {rule[1]:.2f}, {rule[2]:.2f})")
  rates = {}
  for name, (wp, wa, b) in (("fit", rule), ("numbers.py", getattr(numbers, name))):
    cut = wp * x[:, 0] - x[:, 1] + wa * x[:, 2] > b
    rates[name] = (np.sum(cut & ~y) / args.singles, np.sum(~cut & y) / args.pairs)
    print(f"{name}: singles cut {rates[name][0]:.4f}, pairs asked and left "
          f"whole {rates[name][1]:.4f}")
  print(f"pieces={rule[0]:.2f} aspect={rule[1]:.2f} bias={rule[2]:.2f} "
        f"singles_cut={rates['fit'][0]:.4f} pairs_whole={rates['fit'][1]:.4f}")


if __name__ == "__main__":
  main()
