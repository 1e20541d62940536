"""The dataset's own label errors, by confident learning (cleanlab), from out-of-sample
probabilities.

``python -m jaxdigits.evaluate --label_issues`` writes ``label_issues.csv`` (most suspicious
first: ``rank,source_index,given,suggested,score``) and ``label_issues.png`` (the top 36)
beside the other evaluation outputs. ``source_index`` is the 0-based position in the
original raw file of the split (the published IDX / USPS file), so the list compares with
published ones: tfds shuffles examples when it prepares them and keeps no raw index.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from cleanlab import filter as cl_filter
from cleanlab import rank as cl_rank
from matplotlib.figure import Figure

# The raw-row mapping lives in the data layer (training applies data.label_fixes by it).
from jaxdigits.data.sources import split_source_indices  # noqa: F401  (evaluate's entry)

GALLERY_SIZE = 36
COLUMNS = ("rank", "source_index", "given", "suggested", "score")
# cleanlab's filters. Its default finds nothing when the model is so confident that every
# class's threshold (its mean self-confidence, 0.98-0.996 for the shipped MNIST CNN) exceeds
# every error's confidence; "predicted_neq_given" then lists each disagreement, ranked.
FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
           "predicted_neq_given", "low_normalized_margin", "low_self_confidence")


def find(labels: np.ndarray, probs: np.ndarray, filter_by: str = FILTERS[0]
         ) -> list[dict[str, Any]]:
  """Likely label errors, most suspicious first: index, given, suggested, score.

  cleanlab's ``filter_by`` (default: prune by noise rate from the confident joint) decides
  which examples are issues; they are ranked by self-confidence, the probability of the given
  label, which is also the score (lower: more suspicious). ``probs`` must be out-of-sample.
  """
  labels = np.asarray(labels, np.int64)
  probs = np.asarray(probs, np.float64)
  ranked = cl_filter.find_label_issues(labels, probs,
                                       return_indices_ranked_by="self_confidence",
                                       filter_by=filter_by,
                                       n_jobs=1)  # its fork would copy JAX threads
  scores = cl_rank.get_label_quality_scores(labels, probs, method="self_confidence")
  return [{"index": int(i), "given": int(labels[i]), "suggested": int(probs[i].argmax()),
           "score": float(scores[i])} for i in ranked]


def write(issues: list[dict[str, Any]], sources: np.ndarray, images: np.ndarray,
          out_dir: str | Path, title: str = "") -> dict[str, Any]:
  """label_issues.csv and label_issues.png in ``out_dir``; a summary for metrics."""
  out = Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  with open(out / "label_issues.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(COLUMNS)
    for r, e in enumerate(issues, 1):
      writer.writerow([r, int(sources[e["index"]]), e["given"], e["suggested"],
                       f"{e['score']:.6g}"])
  top = issues[:GALLERY_SIZE]
  gallery(images[[e["index"] for e in top]], top, [int(sources[e["index"]]) for e in top],
          out / "label_issues.png", title)
  return {"count": len(issues), "examples": int(len(images)),
          "top": [{**e, "source_index": int(sources[e["index"]])} for e in top[:10]]}


def gallery(images: np.ndarray, issues: list[dict[str, Any]], sources: list[int],
            path: str | Path, title: str = "", columns: int = 6) -> None:
  """The suspects with their raw row, given label and the model's suggestion."""
  rows = max(1, -(-len(issues) // columns))
  fig = Figure(figsize=(columns * 1.6, rows * 1.9 + 0.4), layout="constrained")
  axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
  for ax in axes:
    ax.axis("off")
  for ax, image, e, s in zip(axes, images, issues, sources):
    ax.imshow(np.asarray(image)[..., 0], cmap="gray", vmin=0, vmax=255)
    ax.set_title(f"#{s}: given {e['given']}\nsuggested {e['suggested']} "
                 f"(p={e['score']:.2f})", fontsize=8)
  if not issues:
    axes[0].text(0.5, 0.5, "no label issues found", ha="center", va="center")
  fig.suptitle(f"likely label errors{': ' + title if title else ''} "
               f"(#raw row, p = probability of the given label)")
  fig.savefig(path, dpi=100)
