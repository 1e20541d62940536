"""A bundle's file list and its checks: format, version, size and sha256 of every file.

This is the JAX-free half of ``jaxdigits.bundle``: serving a bundle's ``model.onnx`` through
onnxruntime (``jaxdigits.load(path, runtime="onnx")``) verifies the whole bundle here and
never imports JAX. ``bundle`` writes bundles and restores their Flax variables.

The checksums catch damage and edits (a truncated download, a changed byte, a missing or
extra file); they do not stop a forger who also rewrites the manifest: compare the bundle's
``digest`` with the one its author published, or check it with ``verify(path, digest)``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import ml_collections

from jaxdigits import __version__
from jaxdigits.errors import BundleError

FORMAT = "jaxdigits-bundle"
FORMAT_VERSION = 1  # bump when a reader of the old format could misread the new one
MANIFEST, CONFIG, CARD, PARAMS = "manifest.json", "config.json", "model_card.json", "params"
# The exported forward pass (``jaxdigits.exporters``); bundles written before these existed
# lack them and still load with the JAX runtime.
ONNX, STABLEHLO = "model.onnx", "model.stablehlo"
# The default CNN, shipped in the package; the README's pretrained-command says how it was made.
PRETRAINED = Path(__file__).resolve().parent / "pretrained" / "mnist_cnn"
REEXPORT = "python -m jaxdigits.export --workdir=RUN --out=NEW_BUNDLE"


def sha256(path: Path) -> str:
  h = hashlib.sha256()
  with path.open("rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def files_under(root: Path) -> list[str]:
  return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def digest_of(files: dict[str, dict[str, Any]]) -> str:
  """One sha256 over every file's name and checksum: the bundle's identity."""
  lines = "".join(f"{name} {entry['sha256']}\n" for name, entry in sorted(files.items()))
  return hashlib.sha256(lines.encode()).hexdigest()


def write(root: Path) -> dict[str, Any]:
  """Lists every file under ``root`` in a new ``manifest.json`` there; returns the manifest."""
  files = {name: {"bytes": (root / name).stat().st_size, "sha256": sha256(root / name)}
           for name in files_under(root)}
  manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "written_by": f"jaxdigits {__version__}", "digest": digest_of(files), "files": files}
  (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
  return manifest


def read_json(path: Path, what: str) -> Any:
  try:
    return json.loads(path.read_text())
  except FileNotFoundError:
    raise BundleError(f"{path}: missing; the bundle is incomplete, copy or download all of "
                      f"it again") from None
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise BundleError(f"{path}: {what} is not valid JSON ({e}); the bundle is damaged, copy "
                      f"or download it again") from None


def read_config(root: Path) -> ml_collections.ConfigDict:
  """The bundle's training config (call ``verify`` first)."""
  return ml_collections.ConfigDict(read_json(root / CONFIG, "the config"))


def _check_header(root: Path, manifest: Any) -> dict[str, Any]:
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
  return files


def _check_file(file: Path, entry: dict[str, Any]) -> None:
  if not file.is_file():
    raise BundleError(f"{file}: missing; the bundle is incomplete, copy or download all of "
                      f"it again")
  size = file.stat().st_size
  if size != entry.get("bytes"):
    raise BundleError(f"{file}: {size} bytes, the manifest says {entry.get('bytes')}; the "
                      f"file is truncated or altered, copy or download the bundle again")
  if sha256(file) != entry.get("sha256"):
    raise BundleError(f"{file}: content does not match its sha256 in the manifest; the "
                      f"file was altered or damaged, copy or download the bundle again")


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
  manifest = read_json(root / MANIFEST, "the manifest")
  files = _check_header(root, manifest)
  for name, entry in sorted(files.items()):
    _check_file(root / name, entry)
  extra = sorted(set(files_under(root)) - set(files) - {MANIFEST})
  if extra:
    raise BundleError(f"{root / extra[0]}: not listed in the manifest; files were added to "
                      f"the bundle after export, remove them or use the original bundle")
  if manifest.get("digest") != digest_of(files):
    raise BundleError(f"{root / MANIFEST}: its digest does not match its file list; the "
                      f"manifest was edited, use the original bundle")
  if digest is not None and digest != manifest["digest"]:
    raise BundleError(f"{root}: digest {manifest['digest']} is not the expected {digest}; "
                      f"this is a different or modified bundle")
  return manifest


def entry_of(root: Path, manifest: dict[str, Any], name: str) -> dict[str, Any]:
  """The manifest's entry for one exported file; BundleError says why the bundle lacks it.

  A bundle lacks ``model.onnx`` when it was exported before jaxdigits wrote that file, or
  when the model has no form in that format (the model card then says why).
  """
  entry = manifest["files"].get(name)
  if entry is not None:
    return entry
  card = read_json(root / CARD, "the model card")
  refused = (card.get("export", {}).get("files", {}).get(name, {}).get("refused")
             if isinstance(card, dict) else None)
  why = (f"its model does not export to that format ({refused})" if refused else
         f"it was exported before bundles carried {name}: re-export its run with {REEXPORT}")
  raise BundleError(f"{root / name}: not in this bundle; {why}; or serve the bundle with the "
                    f"JAX runtime (runtime='jax', --runtime=jax)")
