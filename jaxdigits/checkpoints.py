"""Orbax checkpoints that resume, keep the best on validation, and are checked before use.

A checkpoint is the TrainState plus the exact config (JSON) that produced it; a run
compares that config with its own before it touches the folder (``training.workdir``).
Orbax writes each step to a temporary folder and renames it when complete, so a run killed
mid-save leaves the previous checkpoints intact and the next run resumes from the last
whole one.

Orbax checks no content: a flipped block of an array file restores as NaN weights. So once
Orbax has finished a step, the size and sha256 of every file in it go into the step's
``CHECKSUMS`` file (written atomically, like a bundle's manifest), and a step is checked
against it before it is read: a damaged step is never restored. A run being resumed sets
its damaged steps aside (``<step>.damaged``, which Orbax ignores) and resumes from the
newest good one; serving refuses a damaged best step (``inference.restore``). Steps
without the file (written before jaxdigits wrote it, or by a run killed between Orbax's
commit and the checksums) are unverified: they load as before, with Orbax's own errors
turned into one line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

import jax
import ml_collections
import orbax.checkpoint as ocp

from jaxdigits import config as config_lib, manifest
from jaxdigits.config import RESUMABLE_CHANGES
from jaxdigits.errors import CheckpointError

State = TypeVar("State")
_METRIC = "val_accuracy"
CHECKSUMS = "jaxdigits_checksums.json"
_FORMAT = "jaxdigits-checkpoint-checksums"
DAMAGED = ".damaged"  # Orbax reads only all-digit step names: a set-aside step is ignored
CONFIG_FILE = Path("config") / "metadata"  # where Orbax's JsonSave puts a step's config
METRICS_FILE = Path("metrics") / "metrics"
# What Orbax and TensorStore raise on an unreadable or mismatched step (shape text,
# OUT_OF_RANGE reads, missing keys); each becomes one DamagedCheckpointError line.
_ORBAX_ERRORS = (ValueError, OSError, KeyError, TypeError)
# Restoring arrays, Orbax wraps TensorStore's error (OUT_OF_RANGE on a truncated file) in a
# bare Exception.
_RESTORE_ERRORS = (Exception,)


class DamagedCheckpointError(CheckpointError):
  """A checkpoint step that fails its checksums or cannot be read.

  Attributes:
    step: the step. path: its folder. file: the file at fault, where one is known.
    reason: what is wrong, without a fix (the caller knows whether to resume or serve).
  """

  def __init__(self, step: int, path: Path, reason: str, file: Path | None = None):
    self.step, self.path, self.reason, self.file = step, path, reason, file
    super().__init__(f"{reason}: restore the run folder from a copy, or move {path} out of "
                     f"{path.parent} to use the step before it")


def step_dirs(directory: Path) -> dict[int, Path]:
  """The finished steps in a checkpoints folder (Orbax renames a step to its number once
  whole)."""
  if not directory.is_dir():
    return {}
  return {int(p.name): p for p in directory.iterdir() if p.name.isdigit() and p.is_dir()}


def write_checksums(step_dir: Path) -> None:
  """Lists the size and sha256 of every file of a finished step in its ``CHECKSUMS``."""
  files = {name: {"bytes": (step_dir / name).stat().st_size,
                  "sha256": manifest.sha256(step_dir / name)}
           for name in manifest.files_under(step_dir) if name != CHECKSUMS}
  tmp = step_dir / (CHECKSUMS + ".tmp")
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump({"format": _FORMAT, "format_version": 1, "files": files}, f, indent=1)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, step_dir / CHECKSUMS)


def _read_checksums(step: int, step_dir: Path) -> dict[str, dict[str, Any]]:
  file = step_dir / CHECKSUMS
  damaged = f"checkpoint step {step} is damaged: {file}"
  try:
    listed = json.loads(file.read_text(encoding="utf-8"))
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise DamagedCheckpointError(step, step_dir, f"{damaged} cannot be read ({e})",
                                 file) from None
  files = listed.get("files") if isinstance(listed, dict) else None
  if (not isinstance(files, dict) or not files or listed.get("format") != _FORMAT
      or not all(isinstance(e, dict) and isinstance(e.get("bytes"), int)
                 and isinstance(e.get("sha256"), str) and _inside(name)
                 for name, e in files.items())):
    raise DamagedCheckpointError(step, step_dir, f"{damaged} is not a checksum list of "
                                 f"relative paths with bytes and sha256", file)
  return files


def _inside(name: Any) -> bool:
  path = Path(name) if isinstance(name, str) else None
  return path is not None and not path.is_absolute() and ".." not in path.parts


def _check_json(step: int, step_dir: Path) -> None:
  # Without checksums, what can still be checked cheaply: the two JSON files Orbax parses
  # (its metrics as it opens the folder, with a traceback naming no file).
  for name in (METRICS_FILE, CONFIG_FILE):
    file = step_dir / name
    if not file.is_file():
      continue
    try:
      value = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
      value = e
    if not isinstance(value, dict):
      raise DamagedCheckpointError(step, step_dir, f"checkpoint step {step} is damaged: "
                                   f"{file} is not a JSON object ({value})", file)


def verify_step(step: int, step_dir: Path) -> bool:
  """Checks one step against its checksums: True if they hold, False if it has none.

  Raises:
    DamagedCheckpointError: naming the step and the first file that is missing, of
      another size, or of other content than when it was saved.
  """
  if not (step_dir / CHECKSUMS).is_file():
    _check_json(step, step_dir)
    return False
  for name, entry in sorted(_read_checksums(step, step_dir).items()):
    file = step_dir / name
    damaged = f"checkpoint step {step} is damaged: {file}"
    if not file.is_file():
      raise DamagedCheckpointError(step, step_dir, f"{damaged} is missing", file)
    size = file.stat().st_size
    if size != entry["bytes"]:
      raise DamagedCheckpointError(step, step_dir, f"{damaged} is {size} bytes, {CHECKSUMS} "
                                   f"says {entry['bytes']} (truncated or altered)", file)
    if manifest.sha256(file) != entry["sha256"]:
      raise DamagedCheckpointError(step, step_dir, f"{damaged} does not match its sha256 in "
                                   f"{CHECKSUMS} (altered or corrupted since it was saved)",
                                   file)
  return True


def set_aside_damaged(directory: Path) -> list[tuple[DamagedCheckpointError, Path]]:
  """Renames every damaged step of a run to be resumed to ``<step>.damaged`` (kept for a
  look, never read again); each error with where its step went. Only process 0 renames."""
  found = []
  for step, step_dir in sorted(step_dirs(directory).items()):
    try:
      verify_step(step, step_dir)
    except DamagedCheckpointError as e:
      target = step_dir.with_name(step_dir.name + DAMAGED)
      n = 1
      while target.exists():
        n += 1
        target = step_dir.with_name(f"{step_dir.name}{DAMAGED}-{n}")
      found.append((e, target))
  if jax.process_index() == 0:
    for e, target in found:
      e.path.rename(target)
  if jax.process_count() > 1:  # every process opens Orbax on the same steps
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices("jaxdigits_set_aside_damaged_checkpoints")
  return found


def config_to_json(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config as plain JSON types (tuples become lists), as it is stored."""
  return json.loads(config.to_json())


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flatten(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: tree}


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
  """Fields that differ between two JSON configs, except those a resume may change."""
  # A field added to jaxdigits after the checkpoint was written counts as its default.
  a = {**_flatten(config_to_json(config_lib.defaults())), **_flatten(saved)}
  b = _flatten(current)
  return [f"{k}: checkpoint has {a.get(k)!r}, config has {b.get(k)!r}"
          for k in sorted(set(a) | set(b))
          if k not in RESUMABLE_CHANGES and a.get(k) != b.get(k)]


class Checkpoints:
  """The checkpoints of one training run, in ``directory``.

  With a ``config`` they can be written (``training.workdir.check`` first makes sure the
  folder holds that config's run), and damaged steps are set aside first (``set_aside``
  lists them); without one they are opened read-only and nothing is changed. Every step is
  checked against its checksums before it is first restored.
  """

  def __init__(self, directory: str | Path, config: ml_collections.ConfigDict | None = None):
    self.directory = Path(directory).absolute()
    self._pending: int | None = None  # saved, its checksums not yet written
    self._verified: set[int] = set()
    self.set_aside: list[tuple[DamagedCheckpointError, Path]] = []
    if config is None:
      if not self.directory.is_dir():
        raise CheckpointError(f"no checkpoints at {self.directory}: pass a training workdir "
                              f"or its checkpoints/ folder")
      self._config = None
      options = ocp.CheckpointManagerOptions(read_only=True)
    else:
      self._config = config_to_json(config)
      self.set_aside = set_aside_damaged(self.directory)
      # best_fn makes Orbax write each step's metrics to disk (read back by best_step);
      # which checkpoints survive is decided by the preservation policy alone.
      options = ocp.CheckpointManagerOptions(
          create=True, best_fn=lambda m: m[_METRIC], preservation_policy=(
          ocp.checkpoint_managers.AnyPreservationPolicy([
              ocp.checkpoint_managers.LatestN(n=config.checkpoint.keep),
              ocp.checkpoint_managers.BestN(get_metric_fn=lambda m: m[_METRIC], n=1),
          ])))
    try:
      self._manager = ocp.CheckpointManager(self.directory, item_names=("state", "config"),
                                            options=options)
    except _ORBAX_ERRORS:
      # Orbax parses every step's metrics here; name the step it choked on.
      for step, step_dir in sorted(step_dirs(self.directory).items()):
        verify_step(step, step_dir)
      raise

  def step_dir(self, step: int) -> Path:
    return self.directory / str(step)

  def verify(self, step: int) -> bool:
    """Checks ``step`` against its checksums (once per step): False if it has none.

    Raises:
      DamagedCheckpointError: naming the step and the file.
    """
    if step in self._verified:
      return True
    verified = verify_step(step, self.step_dir(step))
    if verified:
      self._verified.add(step)
    return verified

  def saved_config(self, step: int) -> dict[str, Any]:
    try:
      return self._manager.restore(
          step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]
    except _ORBAX_ERRORS as e:
      raise DamagedCheckpointError(
          step, self.step_dir(step), f"checkpoint step {step}: its config "
          f"{self.step_dir(step) / CONFIG_FILE} cannot be read ({_first_line(e)})",
          self.step_dir(step) / CONFIG_FILE) from None

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def metrics(self, step: int) -> dict[str, float]:
    """The metrics saved with ``step`` (empty if none)."""
    return dict(self._manager.metrics(step) or {})

  def best_step(self) -> int | None:
    """The step with the highest validation accuracy (the later one on a tie)."""
    steps = self._manager.all_steps()
    if not steps:
      return None
    return max(steps, key=lambda s: (self.metrics(s).get(_METRIC, -1.0), s))

  def save(self, step: int, state: Any, metrics: dict[str, float]) -> None:
    # Orbax saves in the background; the checksums of a step are written once it is
    # finished, at the next save or wait (Orbax waits for the previous save anyway).
    self._write_pending_checksums()
    if self._manager.save(step, metrics=metrics, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(self._config))):
      self._pending = step

  def _write_pending_checksums(self) -> None:
    if self._pending is None:
      return
    self._manager.wait_until_finished()
    step_dir = self.step_dir(self._pending)
    if jax.process_index() == 0 and step_dir.is_dir():
      write_checksums(step_dir)
    self._verified.add(self._pending)  # written by this process: no need to re-read it
    self._pending = None

  def restore(self, step: int, target: State, *, partial: bool = False) -> State:
    """Restores ``step`` into the structure, shapes and shardings of ``target``.

    ``target`` may hold arrays or ``jax.ShapeDtypeStruct``s with shardings; the saved
    device layout does not matter, so a checkpoint restores onto any device count. With
    ``partial``, ``target`` may be a dict of some of the state's fields (inference reads
    only ``params`` and ``batch_stats``); the others are not read.

    Raises:
      DamagedCheckpointError: the step fails its checksums, or Orbax cannot read it into
        ``target`` (truncated, or its config edited so that the arrays no longer fit).
    """
    self.verify(step)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    if partial:
      self._check_shapes(step, abstract)
    args = (ocp.args.PyTreeRestore(abstract, ocp.checkpoint_utils.construct_restore_args(abstract),
                                   partial_restore=True)
            if partial else ocp.args.StandardRestore(abstract))
    try:
      return self._manager.restore(step, args=ocp.args.Composite(state=args))["state"]
    except _RESTORE_ERRORS as e:
      raise DamagedCheckpointError(step, self.step_dir(step), f"checkpoint step {step} "
                                   f"({self.step_dir(step)}) cannot be read: "
                                   f"{_first_line(e)}") from None

  def _check_shapes(self, step: int, abstract: Any) -> None:
    # Orbax's own mismatch error comes mid-read, as shape text naming no file, and leaves
    # reads in flight that print tracebacks at exit; the saved shapes are read first instead.
    state_dir = self.step_dir(step) / "state"
    handler = ocp.StandardCheckpointHandler()
    try:
      saved = _shapes(dict(handler.metadata(state_dir)))
    except _ORBAX_ERRORS as e:
      raise DamagedCheckpointError(step, self.step_dir(step), f"checkpoint step {step}: "
                                   f"{state_dir} cannot be read ({_first_line(e)})") from None
    finally:
      handler.close()
    for name, shape in _shapes(abstract).items():
      if saved.get(name, shape) != shape:
        raise DamagedCheckpointError(
            step, self.step_dir(step), f"checkpoint step {step}: {name} is saved with shape "
            f"{saved[name]}, but the model its config {self.step_dir(step) / CONFIG_FILE} "
            f"describes has {shape}", self.step_dir(step) / CONFIG_FILE)
      if name not in saved:
        raise DamagedCheckpointError(
            step, self.step_dir(step), f"checkpoint step {step}: the model its config "
            f"{self.step_dir(step) / CONFIG_FILE} describes has {name}, which is not saved",
            self.step_dir(step) / CONFIG_FILE)

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are committed and their checksums written."""
    self._manager.wait_until_finished()
    self._write_pending_checksums()

  def close(self) -> None:
    self.wait()
    self._manager.close()


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {".".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                   for k in path): tuple(leaf.shape) for path, leaf in leaves}


def _first_line(error: BaseException, limit: int = 300) -> str:
  # The root cause names the file and the byte range (Orbax's wrapper names neither).
  while error.__cause__ is not None:
    error = error.__cause__
  text = (str(error).strip().splitlines() or [type(error).__name__])[0]
  return text if len(text) <= limit else text[:limit] + "..."
