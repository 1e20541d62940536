"""Shareable model bundles: export a trained run, and read its model back.

A bundle is a folder:

  manifest.json     format and version, and the size and sha256 of every other file
  config.json       the exact training config (ConfigDict as JSON)
  model_card.json   dataset and splits, preprocessing, measured accuracy, versions, date, and
                    the contract of the exported files (``exporters.contract``)
  params/           a Flax model's inference variables (params, batch_stats), an Orbax
                    checkpoint; or classic/, a classic model's arrays (state.npz) and config
  model.onnx        the forward pass for onnxruntime (jax2onnx), served without JAX
  model.stablehlo   the forward pass as a serialised ``jax.export``, batch dimension symbolic
  not_digit/        optional: the not-a-digit detector (``models.nondigit``: params.npz and
                    detector.json with its threshold), copied from the run's not_digit/

A model without a form in one of the two formats (kNN, RBF SVM, random forest: neither;
test-time augmentation, a linear SVM on HOG features: no ONNX) lacks that file, and the
model card says why. No pickle anywhere: Orbax stores arrays as tensorstore/OCDBT files,
classic arrays are an npz read with allow_pickle=False, the rest is JSON, ONNX protobuf and
a StableHLO flatbuffer. ``manifest`` (JAX-free) lists and verifies the files;
``jaxdigits.load(path)`` verifies a bundle and serves it as a Predictor (``runtime="onnx"``:
through onnxruntime). Bundles written before the two exported files existed still load with
the JAX runtime.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import platform
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from jaxdigits import __version__, checkpoints, config as config_lib, exporters, models, records
from jaxdigits import manifest as manifest_lib
from jaxdigits.errors import BundleError, CheckpointError
from jaxdigits.inference import ood, restore
from jaxdigits.inference.onnx_runtime import OnnxPredictor
from jaxdigits.inference.predictor import ClassicPredictor, FlaxPredictor, Predictor
# Re-exported: bundle.verify, bundle.PRETRAINED and the file names stay this module's API.
from jaxdigits.manifest import (  # noqa: F401
    CARD, CONFIG, FORMAT, FORMAT_VERSION, MANIFEST, ONNX, PARAMS, PRETRAINED, STABLEHLO,
    read_config, read_json, verify)
from jaxdigits.models import classic, nondigit


def _versions() -> dict[str, str]:
  return {"jaxdigits": __version__, "jax": jax.__version__,
          "flax": metadata.version("flax"),
          "orbax-checkpoint": metadata.version("orbax-checkpoint"),
          "python": platform.python_version()}


def model_card(config: ml_collections.ConfigDict, variables: dict[str, Any],
               final: dict[str, Any]) -> dict[str, Any]:
  """What a user of the bundle needs to know, from the config and the run's own metrics."""
  data = config.data
  mnist_style = bool(data.mnist_style) or data.dataset == "mnist"
  return {
      "task": "handwritten digit classification, classes 0-9",
      "model": config.model.to_dict(),
      "parameters": int(sum(np.size(x) for x in jax.tree.leaves(variables["params"]))),
      "dataset": data.dataset,
      "splits": {
          "train": final.get("train_examples"), "validation": final.get("validation_examples"),
          "test": final.get("test_examples"),
          "how": "validation is the last 10% of the official train split (model selection); "
                 "test is the official test split, evaluated once on the checkpoint best on "
                 "validation",
      },
      "input": {"shape": list(config_lib.image_shape(data)), "dtype": "uint8",
                "convention": "bright ink on black, 0..255"},
      "preprocessing": (
          "jaxdigits.preprocess.to_mnist_style: transparency flattened on white, grey, dark "
          "ink on light paper inverted, background removed, cropped to the ink, fitted into "
          "20x20 keeping the aspect ratio, centred by mass in 28x28"
          if mnist_style else f"none: {data.dataset} digits as stored; this model cannot read "
          f"new images (train with data.mnist_style=True)"),
      "metrics": {"test_accuracy": final.get("test_accuracy"),
                  "val_accuracy": final.get("val_accuracy"), "best_epoch": final.get("best_epoch")},
      "versions": _versions(),
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }


def _write(out: str | Path, predictor: Predictor, card: dict[str, Any],
           write_model: Callable[[Path], None], detector: Path | None = None
           ) -> dict[str, Any]:
  """Writes a bundle at ``out`` (which must not exist yet): the model (``write_model`` of the
  folder), the exported files, the ``detector`` folder if given, config, card and manifest;
  returns the manifest."""
  def fill(tmp: Path) -> dict[str, Any]:
    write_model(tmp)
    full = {**card, "export": exporters.export_all(predictor, tmp)}
    if detector is not None:
      full["not_digit"] = _copy_detector(detector, tmp)
    config = checkpoints.config_to_json(predictor.config)
    (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return full

  return _publish(out, fill)


def _publish(out: str | Path, fill: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
  """Fills a new folder (``fill`` writes its files and returns the model card), writes the
  card and the manifest, then renames it to ``out``; returns the manifest."""
  out = Path(out).absolute()
  if out.exists():
    raise BundleError(f"{out} already exists: choose a new --out or delete it first")
  _refuse_inside_a_run_or_bundle(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  # Written beside the target and renamed when whole, so an interrupted export leaves no
  # half bundle under the name users will load.
  tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
  try:
    card = fill(tmp)
    (tmp / CARD).write_text(json.dumps(card, indent=2) + "\n")
    written = manifest_lib.write(tmp)
    tmp.rename(out)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return written


def _copy_detector(folder: Path, bundle_root: Path) -> dict[str, Any]:
  """Copies a detector folder into the bundle (checked readable first); its card entry."""
  meta = ood.Detector.load(folder).meta
  target = bundle_root / nondigit.FOLDER
  target.mkdir()
  for name in (nondigit.PARAMS, nondigit.META):
    shutil.copyfile(folder / name, target / name)
  return {"files": f"{nondigit.FOLDER}/{nondigit.PARAMS}, {nondigit.FOLDER}/{nondigit.META}",
          "threshold": meta["threshold"], "validation": meta.get("validation")}


def add_detector(source: str | Path, detector: str | Path, out: str | Path) -> dict[str, Any]:
  """A copy of the bundle ``source`` at ``out`` with the ``detector`` folder added (one it
  had is replaced) and a new manifest; every other file is copied byte for byte, so the
  model's variables and exported files are unchanged. Returns the new manifest.

  Raises:
    BundleError: ``source`` fails verification, ``out`` exists, or ``detector`` is not one.
  """
  source = Path(source).absolute()
  verify(source)

  def fill(tmp: Path) -> dict[str, Any]:
    shutil.copytree(source, tmp, dirs_exist_ok=True)
    shutil.rmtree(tmp / nondigit.FOLDER, ignore_errors=True)
    (tmp / MANIFEST).unlink()  # written anew, listing the detector
    card = read_json(tmp / CARD, "the model card")
    return {**card, "not_digit": _copy_detector(Path(detector), tmp)}

  return _publish(out, fill)


def _refuse_inside_a_run_or_bundle(out: Path) -> None:
  # A bundle written into a run (e.g. <run>/checkpoints/99) reads as a broken checkpoint and
  # stops that run resuming; one inside a bundle is an unlisted file that breaks its verify.
  for folder in Path(os.path.realpath(out)).parents:
    if (folder / "checkpoints").is_dir() or (folder / classic.STATE_DIR).is_dir() or (
        folder.name == "checkpoints" and (folder.parent / "config.json").is_file()):
      run = folder.parent if folder.name == "checkpoints" else folder
      raise BundleError(f"--out={out} is inside the training workdir {run}: exporting there "
                        f"would break resuming and loading that run; choose a folder outside it")
    if (folder / MANIFEST).is_file():
      raise BundleError(f"--out={out} is inside the bundle {folder}: it would become an "
                        f"unlisted file there; choose a folder outside it")


def save(out: str | Path, config: ml_collections.ConfigDict, variables: dict[str, Any],
         card: dict[str, Any], detector: Path | None = None) -> dict[str, Any]:
  """Writes a Flax model's bundle folder at ``out`` (which must not exist yet); returns its
  manifest.

  ``variables`` may live on any devices with any sharding; Orbax saves one copy. The
  exported files are made from the same variables, and ``card`` gets their record under
  ``"export"`` (``exporters.export_all``: the contract, and per file what was written or
  why that format refused the model). ``detector``: a not-a-digit detector folder to carry.

  Raises:
    BundleError: ``out`` exists, or an exporter mistranslated the model (its logits strayed
      from JAX's on the probe batch).
  """
  # Empty collections (a model without BatchNorm) would be restored as missing anyway.
  variables = {k: v for k, v in variables.items() if jax.tree.leaves(v)}

  def write_params(tmp: Path) -> None:
    with ocp.StandardCheckpointer() as ckptr:
      ckptr.save(tmp / PARAMS, variables)
      ckptr.wait_until_finished()

  # On the host, so the exported constants do not depend on the devices they came from.
  predictor = FlaxPredictor(config, models.build(config.model), jax.device_get(variables))
  return _write(out, predictor, card, write_params, detector)


def export(workdir: str | Path, out: str | Path) -> dict[str, Any]:
  """Bundles a run's model; returns the manifest.

  A Flax run gives its best-on-validation checkpoint; a classic run its fitted model (its
  ``classic/`` folder, arrays only). Each exports what it can: Flax models and the linear
  SVM to both formats (on HOG features, StableHLO only); kNN, the RBF SVM and the random
  forest to neither, and the model card says why, naming the model.

  Raises:
    BundleError: ``workdir`` is a bundle already.
    CheckpointError: ``workdir`` holds no finished checkpoint or fitted classic model.
  """
  path = Path(workdir)
  if (path / MANIFEST).is_file():
    raise BundleError(f"{path} is a bundle already: copy the folder to share it, or check it "
                      f"with python -m jaxdigits.export --verify={path}")
  if (path / classic.STATE_DIR).is_dir() or path.name == classic.STATE_DIR:
    root = path.parent if path.name == classic.STATE_DIR else path
    try:
      config, fitted = classic.load(root)
    except FileNotFoundError as e:  # classic/ without its state.npz and config.json
      raise CheckpointError(str(e)) from None
    card = model_card(config, {"params": fitted.arrays}, records.read(root).final or {})
    return _write(out, ClassicPredictor(config, fitted), card,
                  lambda tmp: classic.save(fitted, config, tmp / classic.STATE_DIR),
                  nondigit.beside(root))
  config, _, variables = restore.read_run(path)
  card = model_card(config, variables, records.read(restore.workdir_of(path)).final or {})
  return save(out, config, variables, card, nondigit.beside(restore.workdir_of(path)))


def load_predictor(path: str | Path, digest: str | None = None) -> Predictor:
  """A verified bundle's model served by JAX: a FlaxPredictor, or a ClassicPredictor.

  Raises:
    BundleError: naming what is wrong (see ``read``).
  """
  root = Path(path).absolute()
  if not (root / classic.STATE_DIR).is_dir():
    model = read(root, digest)
    return FlaxPredictor(*model, detector=ood.load_beside(root))
  verify(root, digest)
  detector = ood.load_beside(root)
  try:
    return ClassicPredictor(*classic.load(root), detector=detector)
  except Exception as e:  # pylint: disable=broad-except  # arrays or settings of any type
    raise BundleError(f"{root / classic.STATE_DIR}: this jaxdigits {__version__} cannot read "
                      f"the bundle's classic model ({e}); upgrade jaxdigits") from None


def read(path: str | Path, digest: str | None = None
         ) -> tuple[ml_collections.ConfigDict, nn.Module, dict[str, Any]]:
  """A verified Flax bundle's config, module and variables, on this process's first device.

  The saved device layout does not matter: the variables are restored into shapes taken from
  the config's model and placed on one device.

  Raises:
    BundleError: naming what is wrong (see ``verify``), or a model this jaxdigits cannot
      build, or variables that do not fit it.
  """
  root = Path(path).absolute()  # Orbax refuses relative paths
  verify(root, digest)
  if (root / classic.STATE_DIR).is_dir():
    raise BundleError(f"{root} holds a classic model, not Flax variables: serve it with "
                      f"jaxdigits.load({str(root)!r}) or bundle.load_predictor")
  config = read_config(root)
  try:
    module, abstract = restore.abstract_variables(config)
  except Exception as e:  # pylint: disable=broad-except  # a forged config: any type anywhere
    writer = read_json(root / MANIFEST, "the manifest").get("written_by")
    raise BundleError(f"{root / CONFIG}: this jaxdigits {__version__} cannot build the "
                      f"bundle's model ({e}); upgrade jaxdigits to the version that wrote it "
                      f"({writer})") from None
  try:
    with ocp.StandardCheckpointer() as ckptr:
      variables = ckptr.restore(root / PARAMS, abstract)
  except Exception as e:  # Orbax raises many types for a tree that does not fit the model
    raise BundleError(f"{root / PARAMS}: cannot be restored into the model of "
                      f"{root / CONFIG} ({type(e).__name__}: {str(e)[:300]}); the bundle is "
                      f"inconsistent, re-export it") from None
  return config, module, dict(variables)


def check_exports(path: str | Path) -> dict[str, float | str]:
  """Runs a verified bundle's exported files on a probe batch against its model in JAX.

  Returns, per exported file the bundle holds, the largest |logit difference| from JAX, or
  why it could not run here (ONNX without onnxruntime installed).

  Raises:
    BundleError: naming the bundle's first fault (see ``read``), or an exported file that
      does not load here or strays from JAX's logits by more than ``exporters.TOLERANCE``.
  """
  root = Path(path).absolute()
  predictor = load_predictor(root)
  listed = read_json(root / MANIFEST, "the manifest")["files"]
  images = np.random.default_rng(0).integers(0, 256, (3, *predictor.input_shape), np.uint8)
  want = predictor.logits(images)
  found: dict[str, float | str] = {}
  if ONNX in listed and importlib.util.find_spec("onnxruntime") is None:
    found[ONNX] = "not run here: onnxruntime is not installed (pip install 'jaxdigits[onnx]')"
  elif ONNX in listed:
    served = OnnxPredictor.load(root / ONNX, predictor.config, listed[ONNX]["sha256"])
    found[ONNX] = exporters.check_close(str(root / ONNX), served.logits(images), want)
  if STABLEHLO in listed:
    from jaxdigits.exporters import stablehlo  # pylint: disable=g-import-not-at-top
    found[STABLEHLO] = exporters.check_close(
        str(root / STABLEHLO),
        stablehlo.load_stablehlo(root / STABLEHLO)(images * np.float32(1 / 255)), want)
  return found
