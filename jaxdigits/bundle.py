"""Shareable model bundles: export a trained run, verify a bundle, read it back.

A bundle is a folder:

  manifest.json     format and version, and the size and sha256 of every other file
  config.json       the exact training config (ConfigDict as JSON)
  model_card.json   dataset and splits, preprocessing, measured accuracy, versions, date
  params/           the inference variables (params, batch_stats), an Orbax checkpoint

No pickle anywhere: Orbax stores arrays as tensorstore/OCDBT files, the rest is JSON. The
checksums catch damage and edits (a truncated download, a changed byte, a missing or extra
file); they do not stop a forger who also rewrites the manifest: compare the bundle's
``digest`` with the one its author published, or check it with ``verify(path, digest)``.
``jaxdigits.load(path)`` verifies a bundle and serves it as a Predictor.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import platform
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from jaxdigits import __version__, checkpoints, config as config_lib, records
from jaxdigits.errors import BundleError
from jaxdigits.inference import restore
from jaxdigits.models import classic

FORMAT = "jaxdigits-bundle"
FORMAT_VERSION = 1  # bump when a reader of the old format could misread the new one
MANIFEST, CONFIG, CARD, PARAMS = "manifest.json", "config.json", "model_card.json", "params"
# The default CNN, shipped in the package; the README's pretrained-command says how it was made.
PRETRAINED = Path(__file__).resolve().parent / "pretrained" / "mnist_cnn"


def _sha256(path: Path) -> str:
  h = hashlib.sha256()
  with path.open("rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _files(root: Path) -> list[str]:
  return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _digest(files: dict[str, dict[str, Any]]) -> str:
  """One sha256 over every file's name and checksum: the bundle's identity."""
  lines = "".join(f"{name} {entry['sha256']}\n" for name, entry in sorted(files.items()))
  return hashlib.sha256(lines.encode()).hexdigest()


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


def save(out: str | Path, config: ml_collections.ConfigDict, variables: dict[str, Any],
         card: dict[str, Any]) -> dict[str, Any]:
  """Writes a bundle folder at ``out`` (which must not exist yet) and returns its manifest.

  ``variables`` may live on any devices with any sharding; Orbax saves one copy.
  """
  out = Path(out).absolute()
  if out.exists():
    raise BundleError(f"{out} already exists: choose a new --out or delete it first")
  out.parent.mkdir(parents=True, exist_ok=True)
  # Written beside the target and renamed when whole, so an interrupted export leaves no
  # half bundle under the name users will load.
  tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
  try:
    # Empty collections (a model without BatchNorm) would be restored as missing anyway.
    variables = {k: v for k, v in variables.items() if jax.tree.leaves(v)}
    with ocp.StandardCheckpointer() as ckptr:
      ckptr.save(tmp / PARAMS, variables)
      ckptr.wait_until_finished()
    (tmp / CONFIG).write_text(json.dumps(checkpoints.config_to_json(config), indent=2) + "\n")
    (tmp / CARD).write_text(json.dumps(card, indent=2) + "\n")
    files = {name: {"bytes": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)}
             for name in _files(tmp)}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "written_by": f"jaxdigits {__version__}", "digest": _digest(files), "files": files}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.rename(out)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return manifest


def export(workdir: str | Path, out: str | Path) -> dict[str, Any]:
  """Bundles the best-on-validation checkpoint of a Flax training run; returns the manifest.

  Raises:
    BundleError: ``workdir`` is a bundle already, or a classic run (bundles hold Flax models).
    CheckpointError: ``workdir`` holds no finished checkpoint.
  """
  path = Path(workdir)
  if (path / MANIFEST).is_file():
    raise BundleError(f"{path} is a bundle already: copy the folder to share it, or check it "
                      f"with python -m jaxdigits.export --verify={path}")
  if (path / classic.STATE_DIR).is_dir() or path.name == classic.STATE_DIR:
    raise BundleError(f"{path} is a classic model's run; bundles hold Flax models, so share the "
                      f"run's {classic.STATE_DIR}/ folder, which jaxdigits.load reads as it is")
  config, _, variables = restore.read_run(path)
  card = model_card(config, variables, records.read(restore.workdir_of(path)).final or {})
  return save(out, config, variables, card)


def _read_json(path: Path, what: str) -> Any:
  try:
    return json.loads(path.read_text())
  except FileNotFoundError:
    raise BundleError(f"{path}: missing; the bundle is incomplete, copy or download all of "
                      f"it again") from None
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise BundleError(f"{path}: {what} is not valid JSON ({e}); the bundle is damaged, copy "
                      f"or download it again") from None


def verify(path: str | Path, digest: str | None = None) -> dict[str, Any]:
  """Checks a bundle's format, version and every file's size and checksum; returns the manifest.

  Raises:
    BundleError: naming the first thing wrong (missing, truncated, altered or extra file,
      unknown format, a format newer than this jaxdigits reads, unexpected digest).
  """
  root = Path(path)
  if not root.is_dir():
    raise BundleError(f"{root}: no such bundle folder (make one with python -m "
                      f"jaxdigits.export --workdir=RUN --out={root})")
  if not (root / MANIFEST).is_file() and (root / "checkpoints").is_dir():
    raise BundleError(f"{root} is a training workdir, not a bundle: export it first with "
                      f"python -m jaxdigits.export --workdir={root} --out=BUNDLE")
  manifest = _read_json(root / MANIFEST, "the manifest")
  if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
    raise BundleError(f"{root / MANIFEST}: not a jaxdigits bundle manifest (format is "
                      f"{manifest.get('format') if isinstance(manifest, dict) else None!r}, "
                      f"expected {FORMAT!r})")
  version = manifest.get("format_version")
  if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
    raise BundleError(f"{root / MANIFEST}: bundle format version {version!r} "
                      f"(written by {manifest.get('written_by', 'an unknown writer')}) is not "
                      f"readable by jaxdigits {__version__}, which reads versions 1 to "
                      f"{FORMAT_VERSION}: upgrade jaxdigits, or re-export the bundle with this "
                      f"version")
  files = manifest.get("files")
  if not isinstance(files, dict) or not files:
    raise BundleError(f"{root / MANIFEST}: lists no files; the manifest is damaged")
  for name, entry in sorted(files.items()):
    file = root / name
    if not file.is_file():
      raise BundleError(f"{file}: missing; the bundle is incomplete, copy or download all of "
                        f"it again")
    size = file.stat().st_size
    if size != entry.get("bytes"):
      raise BundleError(f"{file}: {size} bytes, the manifest says {entry.get('bytes')}; the "
                        f"file is truncated or altered, copy or download the bundle again")
    if _sha256(file) != entry.get("sha256"):
      raise BundleError(f"{file}: content does not match its sha256 in the manifest; the "
                        f"file was altered or damaged, copy or download the bundle again")
  extra = sorted(set(_files(root)) - set(files) - {MANIFEST})
  if extra:
    raise BundleError(f"{root / extra[0]}: not listed in the manifest; files were added to "
                      f"the bundle after export, remove them or use the original bundle")
  if manifest.get("digest") != _digest(files):
    raise BundleError(f"{root / MANIFEST}: its digest does not match its file list; the "
                      f"manifest was edited, use the original bundle")
  if digest is not None and digest != manifest["digest"]:
    raise BundleError(f"{root}: digest {manifest['digest']} is not the expected {digest}; "
                      f"this is a different or modified bundle")
  return manifest


def read(path: str | Path, digest: str | None = None
         ) -> tuple[ml_collections.ConfigDict, nn.Module, dict[str, Any]]:
  """A verified bundle's config, module and variables, on this process's first device.

  The saved device layout does not matter: the variables are restored into shapes taken from
  the config's model and placed on one device.

  Raises:
    BundleError: naming what is wrong (see ``verify``), or a model this jaxdigits cannot
      build, or variables that do not fit it.
  """
  root = Path(path).absolute()  # Orbax refuses relative paths
  verify(root, digest)
  config = ml_collections.ConfigDict(_read_json(root / CONFIG, "the config"))
  try:
    module, abstract = restore.abstract_variables(config)
  except (ValueError, AttributeError, KeyError) as e:
    writer = _read_json(root / MANIFEST, "the manifest").get("written_by")
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
