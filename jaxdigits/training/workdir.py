"""A workdir holds one run: the guard that refuses another config, the lock against a second run.

Every kind of run (Flax, vmapped sweep trial, classic fit) claims its workdir through
``claim``: the guard reads every config saved there (``config.json``, the latest checkpoint's,
a classic fit's) BEFORE anything is created or written, so a refused run leaves every file
byte-identical; then an OS file lock (``flock`` on ``.lock``) is held for the whole run, so a
second run on the same workdir stops at once, naming the process that holds it. The OS
drops the lock when its process ends, crashes included: a stale lock file never blocks.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Iterator

import ml_collections

from jaxdigits import checkpoints
from jaxdigits.errors import CheckpointError
from jaxdigits.models import classic

CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"


def saved_configs(workdir: str | Path) -> list[tuple[Path, dict[str, Any]]]:
  """Every config saved in ``workdir``, with the file or folder it was read from. Reads only."""
  workdir = Path(workdir)
  found = []
  if (workdir / CONFIG_FILE).is_file():
    found.append((workdir / CONFIG_FILE, _read_json(workdir / CONFIG_FILE)))
  ckpt_dir = workdir / "checkpoints"
  if ckpt_dir.is_dir():
    found += _checkpoint_config(ckpt_dir)
  fitted = workdir / classic.STATE_DIR / CONFIG_FILE
  if fitted.is_file():
    found.append((fitted, _read_json(fitted)))
  return found


def check(workdir: str | Path, config: ml_collections.ConfigDict) -> None:
  """Raises CheckpointError if ``workdir`` holds a run of another config. Writes nothing.

  Fields a resume may change (``config.RESUMABLE_CHANGES``: epochs, data folders, the
  parallel layout, checkpoint cadence) do not count.
  """
  if Path(workdir).exists() and not Path(workdir).is_dir():
    raise CheckpointError(f"--workdir={workdir}: is a file; give a folder (a new one, or a run "
                          f"to resume)")
  current = checkpoints.config_to_json(config)
  for where, saved in saved_configs(workdir):
    # The model first: with another model, every model field differs.
    diffs = sorted(checkpoints.config_differences(saved, current),
                   key=lambda d: not d.startswith("model.name:"))
    if diffs:
      held, wanted = saved.get("model", {}).get("name"), config.model.name
      kind = f"a {held} run, not {wanted}" if held != wanted else "a run of another config"
      more = "; ..." if len(diffs) > 5 else ""
      raise CheckpointError(
          f"{Path(workdir).absolute()} holds {kind} ({where}), which this run would "
          f"overwrite: {'; '.join(diffs[:5])}{more}. Use a new --workdir, or rerun with that "
          f"config to resume it.")


@contextlib.contextmanager
def claim(workdir: str | Path, config: ml_collections.ConfigDict, *,
          lock: bool = True) -> Iterator[Path]:
  """Guards, creates, locks and records ``workdir`` for a run of ``config``; yields it.

  ``lock=False`` for the processes of a multi-process run other than process 0: they share
  process 0's workdir, and its lock stands for the whole run.
  """
  workdir = Path(workdir)
  check(workdir, config)  # also refuses a file, which mkdir would fail on with a traceback
  workdir.mkdir(parents=True, exist_ok=True)
  with _locked(workdir) if lock else contextlib.nullcontext():
    check(workdir, config)  # another run may have written its config while we waited
    if lock:
      _write_atomic(workdir / CONFIG_FILE, config.to_json(indent=2) + "\n")
    yield workdir


@contextlib.contextmanager
def _locked(workdir: Path) -> Iterator[None]:
  path = workdir / LOCK_FILE
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
      raise CheckpointError(
          f"{workdir.absolute()} is in use by another run (process "
          f"{holder or 'unknown'}, which holds {path}); wait for it to finish or stop it, "
          f"or use another --workdir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    yield
  finally:
    os.close(fd)  # closing the file releases the lock


def _checkpoint_config(ckpt_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
  """The config of the latest checkpoint, read as the file Orbax wrote it.

  Not through an Orbax CheckpointManager: creating one is a collective of every process of
  a multi-host run, and only some of them may find the folder already there. Orbax
  renames a step's folder to its number once complete, so numbered folders are whole.
  """
  steps = sorted((int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit()), reverse=True)
  if not steps:
    return []
  step_dir = ckpt_dir / str(steps[0])
  config_file = step_dir / "config" / "metadata"  # Orbax's JsonSave file
  if config_file.is_file():
    return [(step_dir, _read_json(config_file))]
  ckpts = checkpoints.Checkpoints(ckpt_dir)  # another Orbax layout: ask Orbax, read-only
  try:
    return [(step_dir, ckpts.saved_config(steps[0]))]
  finally:
    ckpts.close()


def _read_json(path: Path) -> dict[str, Any]:
  try:
    return json.loads(path.read_text(encoding="utf-8"))
  except (OSError, ValueError) as e:
    raise CheckpointError(f"{path} cannot be read as a config ({e}); restore or delete it, "
                          f"or use a new --workdir") from e


def _write_atomic(path: Path, text: str) -> None:
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text, encoding="utf-8")
  os.replace(tmp, path)
