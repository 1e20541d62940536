"""The one loader: a bundle, a Flax run, a classic run, or several of them → a Predictor.

Every command (evaluate, predict, demo, export, report, compare, sweep) loads models through
``load``, so each accepts what the others accept. ``jaxdigits.load`` is this function.

Two runtimes serve a bundle: "jax" (its Flax variables) and "onnx" (its ``model.onnx``
through onnxruntime). The modules that import JAX are imported only on the JAX path, so
``load(bundle, runtime="onnx")`` verifies the bundle and serves it without importing JAX.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Sequence, Union

from jaxdigits import manifest
from jaxdigits.errors import CheckpointError, ConfigError
from jaxdigits.inference.contract import Ensemble, Predictor

PathLike = Union[str, os.PathLike]
RUNTIMES = ("jax", "onnx")
RUNTIME_HELP = ("jax: the model's JAX variables; onnx: the bundle's model.onnx through "
                "onnxruntime, without importing JAX (bundles only, no --tta)")
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
  if (path / manifest.MANIFEST).is_file():
    return Kind.BUNDLE, path
  # Only runs need these (and JAX): a bundle is recognised without them.
  from jaxdigits.inference import restore  # pylint: disable=g-import-not-at-top
  from jaxdigits.models import classic  # pylint: disable=g-import-not-at-top
  if (path / restore.CHECKPOINTS).is_dir():
    return Kind.FLAX, path
  if (path / classic.STATE_DIR).is_dir():
    return Kind.CLASSIC, path
  if path.name in (restore.CHECKPOINTS, classic.STATE_DIR) and path.is_dir():
    return (Kind.FLAX if path.name == restore.CHECKPOINTS else Kind.CLASSIC), path.parent
  raise CheckpointError(f"{path}: holds no model (no manifest.json, checkpoints/ or classic/); "
                        f"give {EXPECTED}")


def _load_onnx(path: PathLike) -> Predictor:
  kind, root = locate(path)
  if kind is not Kind.BUNDLE:
    raise ConfigError(f"{path}: a {kind.value}; runtime 'onnx' serves bundles only: export it "
                      f"with python -m jaxdigits.export --workdir={root} --out=BUNDLE and serve "
                      f"the bundle, or use runtime 'jax'")
  from jaxdigits.inference import onnx_runtime  # pylint: disable=g-import-not-at-top
  return onnx_runtime.OnnxPredictor.from_bundle(root)


def _load_jax(path: PathLike) -> Predictor:
  # pylint: disable=g-import-not-at-top
  from jaxdigits import bundle
  from jaxdigits.inference import ood, restore
  from jaxdigits.inference.predictor import ClassicPredictor, FlaxPredictor
  from jaxdigits.models import classic
  # pylint: enable=g-import-not-at-top
  kind, root = locate(path)
  if kind is Kind.BUNDLE:
    return bundle.load_predictor(root)
  # A run's not-a-digit detector (python -m jaxdigits.ood) sits in its workdir.
  if kind is Kind.FLAX:
    return FlaxPredictor(*restore.read_run(root), detector=ood.load_beside(root))
  try:
    return ClassicPredictor(*classic.load(root), detector=ood.load_beside(root))
  except FileNotFoundError as e:  # classic/ without its state.npz and config.json
    raise CheckpointError(str(e)) from None


def paths_of(path_or_paths: PathLike | Sequence[PathLike] | None) -> list[Path]:
  """The paths ``load`` reads: one, several, or (None) the shipped pretrained bundle."""
  if path_or_paths is None:
    return [manifest.PRETRAINED]
  if isinstance(path_or_paths, (str, os.PathLike)):
    return [Path(path_or_paths)]
  paths = [Path(p) for p in path_or_paths]
  if not paths:
    raise CheckpointError(f"no model given: pass {EXPECTED}, several for an ensemble, or "
                          f"nothing for the shipped MNIST model")
  return paths


def load(path_or_paths: PathLike | Sequence[PathLike] | None = None, *,
         tta: bool = False, runtime: str = "jax") -> Predictor:
  """A Predictor for a bundle, a Flax run, a classic run, or (several) their ensemble.

  Args:
    path_or_paths: a bundle folder, a training workdir or its ``checkpoints/`` folder, a
      classic model's workdir or its ``classic/`` folder; a list of them: an ensemble
      averaging their probabilities; None: the MNIST CNN shipped with jaxdigits.
    tta: average each model's answers over ``augment.TTA_VIEWS`` (test-time augmentation).
    runtime: "jax", or "onnx": serve each bundle's ``model.onnx`` with onnxruntime, without
      importing JAX (bundles only; an ensemble of bundles averages their probabilities as
      with JAX; no ``tta``, which has no ONNX form).

  Returns:
    A Predictor on this process's first device; a run gives its best-on-validation model.

  Raises:
    CheckpointError: a missing path, or one that holds no model (the message says what
      each path may be), or an unfinished or damaged run.
    BundleError: a bundle that fails verification or does not fit its model, or (onnx) has
      no ``model.onnx``, naming the file and the fix.
    ConfigError: ensemble members that read different input shapes (naming the odd one); an
      unknown runtime; runtime "onnx" with ``tta`` or with a path that is not a bundle.
  """
  if runtime not in RUNTIMES:
    raise ConfigError(f"runtime {runtime!r}: not one of {', '.join(RUNTIMES)}")
  if tta and runtime == "onnx":
    raise ConfigError("test-time augmentation (--tta) has no ONNX form: onnxruntime rounds "
                      "a few warped pixels differently from JAX; serve with runtime 'jax' to "
                      "use it, or drop --tta")
  paths = paths_of(path_or_paths)
  members = [(_load_onnx if runtime == "onnx" else _load_jax)(p) for p in paths]
  for member, path in zip(members, paths):
    if member.input_shape != members[0].input_shape:
      raise ConfigError(
          f"{path}: reads images of shape {member.input_shape}, but {paths[0]} reads "
          f"{members[0].input_shape}; an ensemble's models must read the same input, so "
          f"combine runs trained on the same data format")
  predictor = members[0] if len(members) == 1 else Ensemble(tuple(members))
  if not tta:
    return predictor
  from jaxdigits.inference.wrappers import Augmented  # pylint: disable=g-import-not-at-top
  return Augmented(predictor)
