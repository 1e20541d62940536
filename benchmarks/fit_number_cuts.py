"""Fits the rules by which ``numbers`` reads some ink as one digit or as two.

    JAXDIGITS_RAW_DATA=DIR python benchmarks/fit_number_cuts.py [--samples=1500] [--seed=0]
        [--broken=20000] [--probabilities] [--dump=FILE.npz | --load=FILE.npz] [--smoke]

Composes single digits, touching pairs and pairs a little apart (as benchmarks/read_numbers.py
does) from the shipped model's validation digits (the last 6,000 of MNIST train; test stays
unseen), and ``--broken`` more single digits, and asks each question ``numbers`` asks of them
with its features (``numbers._FEATURES``): "cut" (is this component two digits: asked of
singles, of touching pairs and of the pieces a pair's cut leaves) and "join" (are these
neighbouring components one digit: a digit in two strokes, or two digits close together).
A logistic regression per question, then its bias moved to the fewest weighted errors: a
digit cut in two weighs ``--cut-cost`` touching pairs left whole, two digits joined
``--join-cost`` broken digits left apart (roughly how much more often the benchmark's numbers
ask each question the wrong way round than these samples do). Prints each rule for
numbers.py and its error rates beside those of the rule numbers.py holds now. Last line:
``cut_ones_cut=… cut_twos_kept=… join_ones_apart=… join_twos_joined=…`` (the fit).
``--smoke``: 60 of each kind and 100 broken.
"""

from __future__ import annotations

import argparse
import collections

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

import jaxdigits
import read_numbers
from jaxdigits.data import load_tfds
from jaxdigits.inference import numbers, preprocess

# pylint: disable=protected-access


def questions(model, canvas: np.ndarray, digits: int, touching: bool, ask_cut: bool = True
              ) -> list[tuple[str, np.ndarray, bool]]:
  """(rule, features, truly two digits) for each question ``numbers`` asks of a canvas of
  one or two digits (``ask_cut=False``: only the join questions)."""
  ink = preprocess.to_ink(canvas)
  blobs, height = numbers._components(ink)
  groups = numbers._merge(
      [b for b in blobs if max(b.height, b.width) >= numbers._SPECK * height], height)
  reader = numbers._Reader(model, ink, height)
  groups = sorted(groups, key=lambda g: g.box[0])
  out = []
  for a, b in zip(groups, groups[1:]):
    if numbers._gap(a, b) <= numbers._JOIN_GAP * height:
      out.append(("join", reader.features(a + b, a, b), digits == 2 and len(groups) == 2))
  if len(groups) == 1 and ask_cut:
    cut = reader.best_cut(groups[0])
    if cut is not None:
      out.append(("cut", reader.features(groups[0], *cut), digits == 2))
      if digits == 2 and touching:  # the pieces of a pair are asked again
        for piece in cut:
          again = reader.best_cut(piece)
          if again is not None:
            out.append(("cut", reader.features(piece, *again), False))
  return out


def sample(model, images: np.ndarray, rng: np.random.Generator, count: int, broken: int
           ) -> dict[str, list]:
  """{rule: [(features, truly two)]} over ``count`` singles, touching pairs and pairs apart,
  and ``broken`` more singles asked only whether their pieces join."""
  rows = collections.defaultdict(list)
  for digits, touching in ((1, False), (2, True), (2, False)):
    for _ in range(count):
      canvas = read_numbers.compose(list(images[rng.integers(0, len(images), digits)]), rng,
                                    touching=touching)
      for rule, features, two in questions(model, canvas, digits, touching):
        rows[rule].append((features, two))
  for _ in range(broken):
    canvas = read_numbers.compose(list(images[rng.integers(0, len(images), 1)]), rng, False)
    for rule, features, two in questions(model, canvas, 1, False, ask_cut=False):
      rows[rule].append((features, two))
  return rows


def fit(x: np.ndarray, y: np.ndarray, cost_two: float, cost_one: float) -> np.ndarray:
  """Weights over ``numbers._FEATURES`` (last: the bias) with the fewest weighted errors."""
  if y.all() or not y.any():  # too few samples to have both answers (--smoke)
    return np.zeros(x.shape[1]) + np.eye(x.shape[1])[-1] * (1.0 if y.all() else -1.0)
  scaler = StandardScaler().fit(x[:, :-1])
  model = LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(x[:, :-1]), y)
  w = model.coef_[0] / scaler.scale_
  score = x[:, :-1] @ w
  candidates = np.sort(score)
  errors = [cost_two * np.sum((score > t) & ~y) + cost_one * np.sum((score <= t) & y)
            for t in candidates]
  return np.append(w, -candidates[int(np.argmin(errors))])


def rates(weights, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
  """(share of ones read as two, share of twos read as one)."""
  two = x @ np.asarray(weights) > 0
  return (float(np.mean(two[~y])) if (~y).any() else 0.0,
          float(np.mean(~two[y])) if y.any() else 0.0)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--samples", type=int, default=1500,
                      help="canvases of each kind: single, touching pair, pair apart")
  parser.add_argument("--broken", type=int, default=20000,
                      help="more single digits, asked only whether their pieces join: few "
                      "digits come apart, so few of the canvases above ask it")
  parser.add_argument("--cut-cost", type=float, default=3.0,
                      help="a digit cut in two weighs this many touching pairs left whole")
  parser.add_argument("--join-cost", type=float, default=8.0,
                      help="two digits joined weigh this many broken digits left apart")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--probabilities", action="store_true",
                      help="fit the rules for predictors without logits (log-softmax)")
  parser.add_argument("--smoke", action="store_true", help="--samples=60 --broken=100")
  parser.add_argument("--dump", help="also save each rule's features and answers (.npz)")
  parser.add_argument("--load", help="refit from a --dump file instead of composing anew")
  args = parser.parse_args()
  if args.smoke:
    args.samples, args.broken = 60, 100
  kind = "probabilities" if args.probabilities else "logits"
  if args.load:
    saved = np.load(args.load)
    rows = {rule: list(zip(saved[f"{rule}_x"], saved[f"{rule}_y"])) for rule in ("cut", "join")}
  else:
    data = load_tfds("mnist", "train", start=54_000)
    images, rng = np.asarray(data.images)[..., 0], np.random.default_rng(args.seed)
    model = jaxdigits.load()
    rows = sample(_LogProbabilities(model) if args.probabilities else model, images, rng,
                  args.samples, args.broken)
  if args.dump:
    np.savez(args.dump, **{f"{rule}_{part}": np.array([r[i] for r in rows[rule]])
                           for rule in rows for i, part in enumerate(("x", "y"))})
  line = []
  for rule in ("cut", "join"):
    x = np.stack([f for f, _ in rows[rule]])
    y = np.array([t for _, t in rows[rule]], bool)
    weights = (fit(x, y, args.cut_cost, 1.0) if rule == "cut" else
               fit(x, y, 1.0, args.join_cost))
    print(f'("{rule}", "{kind}"): ({", ".join(f"{w:.4g}" for w in weights)}),')
    for name, w in (("fit", weights), ("numbers.py", numbers._RULES[(rule, kind)])):
      ones, twos = rates(w, x, y)
      print(f"  {name}: {int((~y).sum())} ones, {ones:.4f} read as two; {int(y.sum())} twos, "
            f"{twos:.4f} read as one")
    ones, twos = rates(weights, x, y)
    word = ("cut", "kept") if rule == "cut" else ("apart", "joined")
    line += [f"{rule}_ones_{word[0]}={ones:.4f}", f"{rule}_twos_{word[1]}={twos:.4f}"]
  print(" ".join(line))


class _LogProbabilities:
  """The shipped model as a predictor without logits looks (an ensemble, TTA)."""

  def __init__(self, model):
    self.model = model

  def probabilities(self, images):
    return self.model.probabilities(images)


if __name__ == "__main__":
  main()
