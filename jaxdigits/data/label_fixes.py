"""``data.label_fixes``: train without, or with corrected labels for, a list of raw rows.

The list is a ``label_issues.csv`` of the train split (``python -m jaxdigits.evaluate
--label_issues --split=train --folds=K``): ``source_index`` is the row in the raw train file,
``suggested`` cleanlab's label. Only training examples change; validation and test are read
as they are, so the effect is measured on the labels everyone else measures on.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np

from jaxdigits.errors import ConfigError, DataError

MODES = ("remove", "relabel")
REQUIRED = ("source_index", "given", "suggested")
FIELD = "config field data.label_fixes"


@dataclasses.dataclass(frozen=True)
class Fixes:
  rows: np.ndarray  # int64 raw-file rows of the train split
  given: np.ndarray  # the label each row has in the raw file (checked on load)
  suggested: np.ndarray  # the label ``relabel`` gives it


def _int(text: str, what: str, line: int, path: str) -> int:
  try:
    return int(text)
  except ValueError:
    raise ConfigError(f"{FIELD}: {path} line {line}: {what} {text!r} is not an integer; give "
                      f"a label_issues.csv written by python -m jaxdigits.evaluate") from None


def read(path: str, train_rows: int) -> Fixes:
  """Parses and checks the file (no data read); ``train_rows``: rows of the raw train file.

  Raises:
    ConfigError: missing file, wrong columns, a bad value or a row listed twice, naming the
      file and line.
  """
  file = Path(path).expanduser()
  if not file.is_file():
    raise ConfigError(f"{FIELD}: {path} is not a file; give the label_issues.csv written by "
                      f"python -m jaxdigits.evaluate --label_issues --split=train --folds=5")
  try:
    with open(file, newline="") as f:
      table = list(csv.reader(f))
  except (OSError, UnicodeDecodeError, csv.Error) as e:
    raise ConfigError(f"{FIELD}: {path} cannot be read as CSV ({e})") from None
  header = [h.strip() for h in table[0]] if table else []
  missing = [c for c in REQUIRED if c not in header]
  if missing:
    raise ConfigError(f"{FIELD}: {path} has columns {header}, missing {missing}; give a "
                      f"label_issues.csv (rank,source_index,given,suggested,score)")
  cols = [header.index(c) for c in REQUIRED]
  values = []
  for line, row in enumerate(table[1:], 2):
    if not any(cell.strip() for cell in row):
      continue
    if len(row) != len(header):
      raise ConfigError(f"{FIELD}: {path} line {line} has {len(row)} cells, the header "
                        f"{len(header)}")
    r, g, s = (_int(row[c], name, line, path) for c, name in zip(cols, REQUIRED))
    if not 0 <= r < train_rows:
      raise ConfigError(f"{FIELD}: {path} line {line}: source_index {r} is outside the raw "
                        f"train file's rows 0..{train_rows - 1}; is it the list of another "
                        f"dataset?")
    if not (0 <= g <= 9 and 0 <= s <= 9):
      raise ConfigError(f"{FIELD}: {path} line {line}: labels must be digits 0-9, got "
                        f"given={g} suggested={s}")
    values.append((r, g, s))
  table = np.array(values, np.int64).reshape(-1, 3)
  rows, counts = np.unique(table[:, 0], return_counts=True)
  if (counts > 1).any():
    raise ConfigError(f"{FIELD}: {path} lists raw row {int(rows[counts > 1][0])} more than "
                      f"once; each row may be fixed one way")
  return Fixes(table[:, 0], table[:, 1], table[:, 2])


def apply(images: np.ndarray, labels: np.ndarray, sources: np.ndarray, raw_labels: np.ndarray,
          fixes: Fixes, mode: str, path: str = "") -> tuple[np.ndarray, np.ndarray, dict]:
  """The training examples with ``fixes`` applied; and counts for the log.

  ``sources``: each example's raw row (``sources.source_indices``); ``raw_labels``: the raw
  train file's labels, against which each listed ``given`` is checked, so a list of another
  split (a test-split label_issues.csv) is refused rather than applied to unrelated rows.

  Raises:
    DataError: a listed given label is not the raw file's label at that row.
  """
  wrong = np.flatnonzero(raw_labels[fixes.rows] != fixes.given)
  if len(wrong):
    i = wrong[0]
    row = int(fixes.rows[i])
    raise DataError(f"{FIELD}: {path} says raw train row {row} is labelled "
                    f"{int(fixes.given[i])} but the raw train file has {int(raw_labels[row])} "
                    f"({len(wrong)} of {len(fixes.rows)} rows disagree): it is not a list of "
                    f"this dataset's train split; write one with --split=train --folds=K")
  listed = np.isin(sources, fixes.rows)
  counts = {"listed": int(len(fixes.rows)), "in_train": int(listed.sum()),
            "examples_before": int(len(labels))}
  if mode == "remove":
    images, labels = images[~listed], labels[~listed]
  elif mode == "relabel":
    order = np.argsort(fixes.rows)
    at = np.searchsorted(fixes.rows[order], sources[listed])
    labels = labels.copy()
    labels[listed] = fixes.suggested[order][at].astype(labels.dtype)
  else:
    raise ConfigError(f"config field data.label_fix_mode: unknown mode {mode!r}; choose one "
                      f"of {list(MODES)}")
  counts["examples_after"] = int(len(labels))
  return images, labels, counts
