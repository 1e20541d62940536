"""Evaluation figures: confusion matrix, gallery of errors, reliability diagram.

Figures are built with matplotlib's object API (``Figure``, rendered by Agg), not pyplot,
so nothing depends on a display or on pyplot's global current-figure state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay


def confusion_matrix(confusion: np.ndarray, path: str | Path) -> None:
  """Counts (left) and rows normalised to recall (right)."""
  fig = Figure(figsize=(15, 6.5), layout="constrained")
  counts_ax, norm_ax = fig.subplots(1, 2)
  ConfusionMatrixDisplay(confusion).plot(ax=counts_ax, colorbar=False, values_format="d",
                                         cmap="Blues")
  counts_ax.set_title("counts")
  rows = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
  ConfusionMatrixDisplay(rows).plot(ax=norm_ax, colorbar=False, values_format=".2f",
                                    cmap="Blues", text_kw={"fontsize": 7})
  norm_ax.set_title("normalised by true digit (rows sum to 1)")
  fig.savefig(path, dpi=100)


def error_gallery(images: np.ndarray, errors: Sequence[dict[str, Any]], path: str | Path,
                  columns: int = 6, heatmaps: np.ndarray | None = None) -> None:
  """The misclassified images with their true digit, prediction and confidence; with
  ``heatmaps`` (RGB overlays, one per image), each one's explanation beside it."""
  pairs = 1 if heatmaps is None else 2
  rows = max(1, -(-len(errors) // columns))
  fig = Figure(figsize=(columns * 1.6 * pairs, rows * 1.9), layout="constrained")
  axes = np.atleast_1d(fig.subplots(rows, columns * pairs)).ravel()
  for ax in axes:
    ax.axis("off")
  for i, (image, e) in enumerate(zip(images, errors)):
    ax = axes[i * pairs]
    ax.imshow(np.asarray(image)[..., 0], cmap="gray", vmin=0, vmax=255)
    ax.set_title(f"true {e['true']} → {e['predicted']}\np={e['confidence']:.2f}", fontsize=9)
    if heatmaps is not None:
      axes[i * pairs + 1].imshow(heatmaps[i])
      axes[i * pairs + 1].set_title(f"why {e['predicted']}", fontsize=9)
  if not errors:
    axes[0].text(0.5, 0.5, "no errors", ha="center", va="center")
  fig.suptitle("most confident errors" + ("" if heatmaps is None else
               " (beside each: SmoothGrad heat map of the predicted digit)"))
  fig.savefig(path, dpi=100)


def reliability_diagram(bins: Sequence[dict[str, float]], ece: float, path: str | Path) -> None:
  """Accuracy against confidence per bin; a calibrated model follows the diagonal."""
  fig = Figure(figsize=(6, 6.5), layout="constrained")
  acc_ax, count_ax = fig.subplots(2, 1, height_ratios=(3, 1), sharex=True)
  lows = np.array([b["low"] for b in bins])
  widths = np.array([b["high"] - b["low"] for b in bins])
  acc_ax.bar(lows, [b["accuracy"] for b in bins], width=widths, align="edge",
             edgecolor="black", label="accuracy")
  acc_ax.plot([b["confidence"] for b in bins], [b["confidence"] for b in bins], "o",
              color="tab:red", label="mean confidence")
  acc_ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
  acc_ax.set(ylabel="accuracy", ylim=(0, 1), title=f"reliability (ECE = {ece:.4f})")
  acc_ax.legend(loc="upper left")
  count_ax.bar(lows, [b["count"] for b in bins], width=widths, align="edge", edgecolor="black")
  count_ax.set(xlabel="confidence of the predicted digit", ylabel="images", yscale="log",
               xlim=(0, 1))
  fig.savefig(path, dpi=100)
