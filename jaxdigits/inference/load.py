"""The one loader: a bundle, a Flax run, a classic run, or several of them → a Predictor.

Every command (evaluate, predict, demo, export, report, compare, sweep) loads models through
``load``, so each accepts what the others accept. ``jaxdigits.load`` is this function.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Sequence, Union

from jaxdigits import bundle
from jaxdigits.errors import CheckpointError, ConfigError
from jaxdigits.inference import restore
from jaxdigits.inference.predictor import ClassicPredictor, FlaxPredictor, Predictor
from jaxdigits.inference.wrappers import Augmented, Ensemble
from jaxdigits.models import classic

PathLike = Union[str, os.PathLike]
EXPECTED = ("a bundle folder (manifest.json; python -m jaxdigits.export makes one), a training "
            "workdir or its checkpoints/ folder, or a classic model's workdir or its classic/ "
            "folder")


class Kind(enum.Enum):
  BUNDLE = "bundle"
  FLAX = "flax run"
  CLASSIC = "classic run"


def locate(path: PathLike) -> tuple[Kind, Path]:
  """What ``path`` holds, and its folder: the bundle, or the run's workdir.

  Raises:
    CheckpointError: ``path`` does not exist or holds none of the three, naming what it takes.
  """
  path = Path(path)
  if not path.exists():
    raise CheckpointError(f"{path}: no such file or folder; give {EXPECTED}")
  if (path / bundle.MANIFEST).is_file():
    return Kind.BUNDLE, path
  if (path / restore.CHECKPOINTS).is_dir():
    return Kind.FLAX, path
  if (path / classic.STATE_DIR).is_dir():
    return Kind.CLASSIC, path
  if path.name in (restore.CHECKPOINTS, classic.STATE_DIR) and path.is_dir():
    return (Kind.FLAX if path.name == restore.CHECKPOINTS else Kind.CLASSIC), path.parent
  raise CheckpointError(f"{path}: holds no model (no manifest.json, checkpoints/ or classic/); "
                        f"give {EXPECTED}")


def _load_one(path: PathLike) -> Predictor:
  kind, root = locate(path)
  if kind is Kind.BUNDLE:
    return FlaxPredictor(*bundle.read(root))
  if kind is Kind.FLAX:
    return FlaxPredictor(*restore.read_run(root))
  try:
    return ClassicPredictor(*classic.load(root))
  except FileNotFoundError as e:  # classic/ without its state.npz and config.json
    raise CheckpointError(str(e)) from None


def paths_of(path_or_paths: PathLike | Sequence[PathLike] | None) -> list[Path]:
  """The paths ``load`` reads: one, several, or (None) the shipped pretrained bundle."""
  if path_or_paths is None:
    return [bundle.PRETRAINED]
  if isinstance(path_or_paths, (str, os.PathLike)):
    return [Path(path_or_paths)]
  paths = [Path(p) for p in path_or_paths]
  if not paths:
    raise CheckpointError(f"no model given: pass {EXPECTED}, several for an ensemble, or "
                          f"nothing for the shipped MNIST model")
  return paths


def load(path_or_paths: PathLike | Sequence[PathLike] | None = None, *,
         tta: bool = False) -> Predictor:
  """A Predictor for a bundle, a Flax run, a classic run, or (several) their ensemble.

  Args:
    path_or_paths: a bundle folder, a training workdir or its ``checkpoints/`` folder, a
      classic model's workdir or its ``classic/`` folder; a list of them: an ensemble
      averaging their probabilities; None: the MNIST CNN shipped with jaxdigits.
    tta: average each model's answers over ``augment.TTA_VIEWS`` (test-time augmentation).

  Returns:
    A Predictor on this process's first device; a run gives its best-on-validation model.

  Raises:
    CheckpointError: a missing path, or one that holds no model (the message says what
      each path may be), or an unfinished or damaged run.
    BundleError: a bundle that fails verification or does not fit its model.
    ConfigError: ensemble members that read different input shapes (naming the odd one).
  """
  paths = paths_of(path_or_paths)
  members = [_load_one(p) for p in paths]
  for member, path in zip(members, paths):
    if member.input_shape != members[0].input_shape:
      raise ConfigError(
          f"{path}: reads images of shape {member.input_shape}, but {paths[0]} reads "
          f"{members[0].input_shape}; an ensemble's models must read the same input, so "
          f"combine runs trained on the same data format")
  predictor = members[0] if len(members) == 1 else Ensemble(tuple(members))
  return Augmented(predictor) if tta else predictor
