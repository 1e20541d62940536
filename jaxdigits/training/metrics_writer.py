"""Where training metrics go: a progress bar on stderr, metrics.jsonl, TensorBoard events."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import tqdm
from tensorboardX import SummaryWriter


class MetricsWriter:
  """Writes one record per epoch (and a final one) to every sink; only process 0 writes."""

  def __init__(self, workdir: str | Path, *, total_steps: int, initial_step: int,
               progress_bar: bool = True, enabled: bool = True):
    self._enabled = enabled
    workdir = Path(workdir)
    if enabled:
      self._jsonl = open(workdir / "metrics.jsonl", "a", encoding="utf-8")
      self._tb = SummaryWriter(str(workdir / "tensorboard"))
    self._bar = tqdm.tqdm(total=total_steps, initial=initial_step, unit="step", file=sys.stderr,
                          dynamic_ncols=True, mininterval=1.0,
                          disable=not (enabled and progress_bar))

  def advance(self, steps: int, **postfix: Any) -> None:
    self._bar.update(steps)
    if postfix:
      self._bar.set_postfix(postfix, refresh=False)

  def write(self, step: int, record: dict[str, Any]) -> None:
    if not self._enabled:
      return
    self._jsonl.write(json.dumps({"step": step, **record}) + "\n")
    self._jsonl.flush()
    for key, value in record.items():
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        self._tb.add_scalar(key, value, step)
    self._tb.flush()
    summary = " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in record.items())
    self._bar.write(summary, file=sys.stderr)

  def close(self) -> None:
    self._bar.close()
    if self._enabled:
      self._jsonl.close()
      self._tb.close()
