"""Which test-time augmentation views to use, chosen on validation, then measured on test.

  JAXDIGITS_RAW_DATA=DIR python benchmarks/tta.py WORKDIR [WORKDIR ...]
  JAXDIGITS_RAW_DATA=DIR python benchmarks/tta.py --smoke [WORKDIR ...]

For each candidate view set (below), the validation accuracy of every run and of their
ensemble. The set with the best mean single-run validation accuracy is chosen (ties: fewer
views); test accuracy is then printed for no augmentation and for that set only, so the
test split chooses nothing. ``augment.TTA_VIEWS`` is the set this chose for configs/best.py.
Last line: ``chosen=… val_single=… val_tta=… test_single=… test_tta=… test_ensemble=…
test_ensemble_tta=… shipped=…`` (percent; single figures are means over runs; shipped: whether
the chosen set is ``augment.TTA_VIEWS``). ``--smoke``: the first 300 digits of each split,
and without a WORKDIR the shipped MNIST CNN.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import jaxdigits
from jaxdigits.analysis import evaluate
from jaxdigits.data import augment
from jaxdigits.inference import predictor as predict

IDENTITY = augment.IDENTITY
PLUS = tuple((0.0, 1.0, dy, dx) for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)))
BOX = tuple((0.0, 1.0, dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)
TURNS = tuple((r, s, 0.0, 0.0) for r in (-5.0, 0.0, 5.0) for s in (0.9, 1.0, 1.1)
              if (r, s) != (0.0, 1.0))
CANDIDATES = {
    "none": (IDENTITY,),
    "shifts": (IDENTITY, *PLUS),
    "shifts_3x3": (IDENTITY, *BOX),
    "turns_sizes": (IDENTITY, *TURNS),
    "shifts_turns_sizes": (IDENTITY, *PLUS, *TURNS),
    "all": (IDENTITY, *BOX, *TURNS),
}


def view_probabilities(runs: list[predict.Predictor], split: str, views: set[augment.View],
                       limit: int | None = None) -> tuple[dict, np.ndarray]:
  """{(run index, view): probabilities} for every run and view, and the labels (of the
  first ``limit`` digits of the split, or all)."""
  data = evaluate.load_eval_split(runs[0], "mnist", split)
  views = tuple(views)
  images = dict(zip(views, augment.tta_views(data.images[:limit], views)))
  return ({(i, v): run.probabilities(images[v]) for i, run in enumerate(runs) for v in views},
          np.asarray(data.labels[:limit]))


def accuracies(probs: dict, labels: np.ndarray, n: int, views: tuple) -> tuple[list, float]:
  """Percent accuracy of each run and of the ensemble, averaging over ``views``."""
  per_run = [np.mean([probs[i, v] for v in views], 0) for i in range(n)]
  acc = lambda p: 100 * float(np.mean(p.argmax(-1) == labels))
  return [acc(p) for p in per_run], acc(np.mean(per_run, 0))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdirs", nargs="*", help="training runs or bundles")
  parser.add_argument("--smoke", action="store_true", help="300 digits per split")
  args = parser.parse_args()
  if not args.workdirs and not args.smoke:
    parser.error("give one or more WORKDIRs")
  workdirs = args.workdirs or ["shipped"]
  runs = ([jaxdigits.load(w) for w in args.workdirs] if args.workdirs else [jaxdigits.load()])
  limit = 300 if args.smoke else None
  start = time.perf_counter()
  views = {v for vs in CANDIDATES.values() for v in vs}
  val, val_labels = view_probabilities(runs, "validation", views, limit)
  print(f"{len(runs)} runs, {len(views)} distinct views, validation inference "
        f"{time.perf_counter() - start:.1f} s")
  print(f"{'views':>20s} {'n':>3s} {'val mean':>9s} {'val ens':>8s}  val per run")
  scores = {}
  for name, vs in CANDIDATES.items():
    singles, ensemble = accuracies(val, val_labels, len(runs), vs)
    scores[name] = (np.mean(singles), -len(vs))
    print(f"{name:>20s} {len(vs):3d} {np.mean(singles):9.3f} {ensemble:8.2f}  "
          + " ".join(f"{s:.2f}" for s in singles))
  chosen = max(scores, key=scores.get)
  test, test_labels = view_probabilities(runs, "test",
                                         {*CANDIDATES["none"], *CANDIDATES[chosen]}, limit)
  plain, plain_ens = accuracies(test, test_labels, len(runs), CANDIDATES["none"])
  tta, tta_ens = accuracies(test, test_labels, len(runs), CANDIDATES[chosen])
  print(f"chosen on validation: {chosen}; test per run without / with it:")
  for w, a, b in zip(workdirs, plain, tta):
    print(f"  {w}: {a:.2f} / {b:.2f}")
  print(f"chosen={chosen} val_single={scores['none'][0]:.3f} val_tta={scores[chosen][0]:.3f} "
        f"test_single={np.mean(plain):.3f} test_tta={np.mean(tta):.3f} "
        f"test_ensemble={plain_ens:.2f} test_ensemble_tta={tta_ens:.2f} "
        f"shipped={set(CANDIDATES[chosen]) == set(augment.TTA_VIEWS)}")


if __name__ == "__main__":
  main()
