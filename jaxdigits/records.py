"""``metrics.jsonl``: the one schema of a run's metrics, the helpers that write it, its one reader.

A run folder's ``metrics.jsonl`` holds one JSON object per line, appended as the run goes
(a resumed run appends to it). Every line has ``step`` (optimizer steps so far) and is one
of two records:

Epoch record (one per finished epoch of a Flax run; a resume first drops the records of
epochs past the checkpoint it resumes from, ``keep_through``, and the reader keeps the last
of any epoch written twice by older versions):
  ``epoch`` (1-based), ``train_loss``, ``train_accuracy`` (on the augmented training
  batches, as trained), ``val_accuracy``, ``epoch_seconds`` (the train steps only),
  ``images_per_second`` (training images of every trial in the program per second),
  ``trials`` (how many trials trained together: 1, or T for a vmapped sweep group).

Final record (the last line of a finished run; the same keys for every kind of run):
  ``kind``                "flax" or "classic"
  ``best_epoch``          the epoch whose checkpoint is served (best on validation);
                          null for a classic fit, which has no epochs
  ``val_accuracy``        of that checkpoint (of the fit, for a classic model)
  ``test_accuracy``       of that checkpoint; ABSENT for sweep trials, whose selection must
                          never see the test split
  ``train_examples``, ``validation_examples``, ``test_examples``   split sizes
  ``strategy``            "single" | "pmap" | "sharded" | "vmapped" | "classic"
  ``devices``, ``processes``
  ``trials``              1, or T for a trial of a vmapped group of T
  ``train_seconds``       this invocation's state set-up, transfer, compilation and train
                          steps (not data loading, validation or checkpoints); the fit
                          time for a classic model
  ``compile_seconds``     the part of ``train_seconds`` spent compiling (0 for classic)

``read`` is the one reader: bundle, sweeps, report, compare and evaluate take "final" from
it. This module imports nothing heavy (no JAX): light readers use it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

FILE = "metrics.jsonl"
KINDS = ("flax", "classic")
EPOCH_KEYS = ("epoch", "train_loss", "train_accuracy", "val_accuracy", "epoch_seconds",
              "images_per_second", "trials")
FINAL_KEYS = ("kind", "best_epoch", "val_accuracy", "train_examples", "validation_examples",
              "test_examples", "strategy", "devices", "processes", "trials", "train_seconds",
              "compile_seconds")
OPTIONAL_FINAL_KEYS = ("test_accuracy",)


@dataclasses.dataclass(frozen=True)
class RunLog:
  """What a run's ``metrics.jsonl`` says.

  Attributes:
    epochs: one record per epoch, in epoch order, de-duplicated (the last write of an epoch
      wins: a run killed after writing an epoch and resumed before its checkpoint writes it
      again).
    final: the final record of a finished run, None while the run is unfinished (no final
      record, or epochs written after the last one: a finished run resumed for more epochs).
  """

  epochs: list[dict[str, Any]]
  final: dict[str, Any] | None

  @property
  def epoch_seconds(self) -> float:
    """Seconds spent in train steps over every epoch of every invocation, resumes included;
    for a classic run, its fit time."""
    if self.epochs:
      return float(sum(r.get("epoch_seconds", 0.0) for r in self.epochs))
    return float((self.final or {}).get("train_seconds") or 0.0)


def epoch_record(epoch: int, *, train_loss: float, train_accuracy: float, val_accuracy: float,
                 epoch_seconds: float, images: int, trials: int = 1) -> dict[str, Any]:
  """An epoch record; ``images`` is how many training images the epoch's program saw."""
  return {"epoch": epoch, "train_loss": float(train_loss),
          "train_accuracy": float(train_accuracy), "val_accuracy": float(val_accuracy),
          "epoch_seconds": float(epoch_seconds),
          "images_per_second": images / max(epoch_seconds, 1e-9), "trials": trials}


def final_record(**fields: Any) -> dict[str, Any]:
  """A final record from exactly ``FINAL_KEYS`` (and optionally ``test_accuracy``).

  Raises ValueError on a missing or unknown key: a writer that drifts from the schema is
  a bug, caught where it is written rather than where it is read.
  """
  missing = [k for k in FINAL_KEYS if k not in fields]
  unknown = sorted(set(fields) - set(FINAL_KEYS) - set(OPTIONAL_FINAL_KEYS))
  if missing or unknown or fields["kind"] not in KINDS:
    raise ValueError(f"final record: missing {missing}, unknown {unknown}, "
                     f"kind {fields.get('kind')!r} (one of {KINDS})")
  return {k: fields[k] for k in (*FINAL_KEYS, *OPTIONAL_FINAL_KEYS) if k in fields}


def is_final(record: dict[str, Any]) -> bool:
  return "best_epoch" in record and "epoch" not in record


def line(step: int, record: dict[str, Any]) -> str:
  """One ``metrics.jsonl`` line, newline included."""
  return json.dumps({"step": step, **record}) + "\n"


def path(workdir: str | Path) -> Path:
  return Path(workdir) / FILE


def read(workdir: str | Path) -> RunLog:
  """The epochs and final record of the run in ``workdir`` (empty if it has no metrics).

  A line cut short by a crash mid-write is skipped: it is never the only copy of a record
  that matters (the epoch is re-run and re-written on resume).
  """
  file = path(workdir)
  if not file.is_file():
    return RunLog([], None)
  epochs: dict[int, dict[str, Any]] = {}
  final = None
  for text in file.read_text(encoding="utf-8").splitlines():
    try:
      record = json.loads(text)
    except json.JSONDecodeError:
      continue
    if not isinstance(record, dict):
      continue
    if "epoch" in record:
      epochs[record["epoch"]] = record
      final = None  # a run resumed past its final record is unfinished again
    elif is_final(record):
      final = _with_schema(record)
  return RunLog([epochs[e] for e in sorted(epochs)], final)


def keep_through(workdir: str | Path, epoch: int) -> int:
  """Drops the records a resume from ``epoch``'s checkpoint re-writes; how many it dropped.

  A run killed after writing an epoch's record but before its checkpoint was whole (kill -9
  during a save) resumes from the epoch before and writes that record again: everything from
  the first record of an epoch past ``epoch`` on (and any line cut short) goes, so the file
  never holds an epoch twice. The file is replaced atomically: a crash here leaves the old
  one or the new one.
  """
  file = path(workdir)
  if not file.is_file():
    return 0
  lines = file.read_text(encoding="utf-8").splitlines(keepends=True)
  kept = []
  for text in lines:
    try:
      record = json.loads(text)
    except json.JSONDecodeError:
      continue
    if isinstance(record, dict) and isinstance(record.get("epoch"), int) and (
        record["epoch"] > epoch):
      break
    kept.append(text if text.endswith("\n") else text + "\n")
  if kept == lines:
    return 0
  tmp = file.with_name(file.name + ".tmp")
  with open(tmp, "w", encoding="utf-8") as f:
    f.writelines(kept)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, file)
  return len(lines) - len(kept)


def _with_schema(record: dict[str, Any]) -> dict[str, Any]:
  # Runs written before this schema lack some keys; they read as null rather than missing,
  # and a classic fit's old ``fit_seconds`` is its train time.
  record = dict(record)
  if "kind" not in record:
    record["kind"] = "classic" if record.get("strategy") == "classic" else "flax"
  if "train_seconds" not in record and "fit_seconds" in record:
    record["train_seconds"] = record["fit_seconds"]
  for key in FINAL_KEYS:
    record.setdefault(key, None)
  return record
