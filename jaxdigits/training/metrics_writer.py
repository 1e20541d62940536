"""Where training metrics go: metrics.jsonl (``jaxdigits.records``), TensorBoard, the console.

One ``Progress`` bar per program (however many trials it trains) and one ``MetricsWriter``
per run folder. Only process 0 writes or prints.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import tqdm
from tensorboardX import SummaryWriter

from jaxdigits import records


class Progress:
  """The step progress bar on stderr, and the lines printed above it.

  The bar is drawn only on a terminal and vanishes when done (``leave=False``): the epoch
  lines stay, and a log file gets no carriage-return redraws.
  """

  def __init__(self, *, total_steps: int, initial_step: int, bar: bool = True,
               enabled: bool = True):
    self._enabled = enabled
    self._bar = tqdm.tqdm(total=total_steps, initial=initial_step, unit="step", file=sys.stderr,
                          dynamic_ncols=True, mininterval=1.0, leave=False,
                          disable=not (enabled and bar and sys.stderr.isatty()))

  def advance(self, steps: int, **postfix: Any) -> None:
    self._bar.update(steps)
    if postfix:
      self._bar.set_postfix(postfix, refresh=False)

  def print(self, text: str) -> None:
    if self._enabled:
      self._bar.write(text, file=sys.stderr)

  def close(self) -> None:
    self._bar.close()


def epoch_line(record: dict[str, Any], num_epochs: int, label: str = "") -> str:
  """``epoch 3/5  loss 0.0412  train 98.71%  val 99.02%  4.1 s`` (``label`` in front)."""
  return (f"{label + '  ' if label else ''}epoch {record['epoch']}/{num_epochs}  "
          f"loss {record['train_loss']:.4f}  train {record['train_accuracy']:.2%}  "
          f"val {record['val_accuracy']:.2%}  {record['epoch_seconds']:.1f} s")


def _ends_with_newline(file: Path) -> bool:
  with open(file, "rb") as f:
    f.seek(-1, 2)
    return f.read(1) == b"\n"


class MetricsWriter:
  """Appends a run folder's records to metrics.jsonl and TensorBoard; epoch lines to the console."""

  def __init__(self, workdir: str | Path, *, num_epochs: int, progress: Progress | None = None,
               label: str = "", enabled: bool = True, resume_epoch: int = 0):
    """``resume_epoch``: the epoch of the checkpoint the run resumes from (0: none); the
    records of later epochs, which the run writes again, are dropped first."""
    self._enabled, self._progress, self._label = enabled, progress, label
    self._num_epochs = num_epochs
    if enabled:
      records.keep_through(workdir, resume_epoch)
      file = records.path(workdir)
      # A run killed mid-line leaves it unterminated; the next record starts a line of its own.
      self._jsonl = open(file, "a+", encoding="utf-8")
      if self._jsonl.tell() and not _ends_with_newline(file):
        self._jsonl.write("\n")
      self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"))

  def write(self, step: int, record: dict[str, Any]) -> None:
    if not self._enabled:
      return
    self._jsonl.write(records.line(step, record))
    self._jsonl.flush()
    for key, value in record.items():
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        self._tb.add_scalar(key, value, step)
    self._tb.flush()
    if "epoch" in record and self._progress is not None:
      self._progress.print(epoch_line(record, self._num_epochs, self._label))

  def close(self) -> None:
    if self._enabled:
      self._jsonl.close()
      self._tb.close()
