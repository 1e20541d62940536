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
import os
import re
import stat
from pathlib import Path
from typing import Any

import ml_collections

from jaxdigits import __version__, config as config_lib
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
  """Every regular file under ``root``, relative; never follows a link (see ``_scan``)."""
  return sorted(_scan(root))


def _scan(root: Path) -> set[str]:
  """The regular files under ``root``. A symlink (to anything, dangling or a loop), a FIFO,
  socket or device is refused by name: following one could read outside the bundle or block."""
  found: set[str] = set()
  stack = [root]
  while stack:
    folder = stack.pop()
    with os.scandir(folder) as entries:
      for entry in entries:
        path = Path(entry.path)
        name = path.relative_to(root).as_posix()
        mode = entry.stat(follow_symlinks=False).st_mode
        if stat.S_ISLNK(mode):
          raise BundleError(f"{path}: a symbolic link inside the bundle; bundles hold plain "
                            f"files only, copy the original bundle (or dereference it: cp -rL)")
        if stat.S_ISDIR(mode):
          stack.append(path)
        elif stat.S_ISREG(mode):
          found.add(name)
        else:
          raise BundleError(f"{path}: a special file (FIFO, socket or device) inside the "
                            f"bundle; remove it or use the original bundle")
  return found


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
    return json.loads(path.read_text(), parse_constant=_no_constant)
  except FileNotFoundError:
    raise BundleError(f"{path}: missing; the bundle is incomplete, copy or download all of "
                      f"it again") from None
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise BundleError(f"{path}: {what} is not valid JSON ({e}); the bundle is damaged, copy "
                      f"or download it again") from None
  except (RecursionError, ValueError) as e:  # nested past the parser's depth; NaN, Infinity
    raise BundleError(f"{path}: {what} is not a jaxdigits file ({str(e)[:80]}); the bundle is "
                      f"damaged or forged, copy or download it again") from None


def _no_constant(name: str) -> Any:
  raise ValueError(f"{name} is not a JSON number")


def read_config(root: Path) -> ml_collections.ConfigDict:
  """The bundle's training config (call ``verify`` first); its shape is checked here, as a
  forger who rewrites the manifest can put anything in it."""
  raw = read_json(root / CONFIG, "the config")
  model, data = (raw.get("model"), raw.get("data")) if isinstance(raw, dict) else (None, None)
  if not isinstance(model, dict) or not isinstance(data, dict) or not isinstance(
      model.get("name"), str):
    raise BundleError(f"{root / CONFIG}: not a jaxdigits config (it needs a 'model' section "
                      f"naming its model and a 'data' section); the bundle is damaged or "
                      f"forged, use the original bundle")
  try:
    config = ml_collections.ConfigDict(raw)
    config_lib.image_shape(config.data)
  except Exception as e:  # pylint: disable=broad-except  # untrusted data, any type
    raise BundleError(f"{root / CONFIG}: unreadable config ({type(e).__name__}: "
                      f"{str(e)[:120]}); the bundle is damaged or forged, use the original "
                      f"bundle") from None
  return config


def _check_header(root: Path, manifest: Any) -> dict[str, dict[str, Any]]:
  where = root / MANIFEST
  if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
    raise BundleError(f"{where}: not a jaxdigits bundle manifest (format is "
                      f"{manifest.get('format') if isinstance(manifest, dict) else None!r}, "
                      f"expected {FORMAT!r})")
  version = manifest.get("format_version")
  # bool is an int to isinstance: ``true`` must not read as version 1.
  if type(version) is not int or version > FORMAT_VERSION or version < 1:
    writer = manifest.get("written_by")
    raise BundleError(f"{where}: bundle format version {version!r} (written by "
                      f"{writer if isinstance(writer, str) else 'an unknown writer'}) is not "
                      f"readable by jaxdigits {__version__}, which reads versions 1 to "
                      f"{FORMAT_VERSION}: upgrade jaxdigits, or re-export the bundle with this "
                      f"version")
  if not isinstance(manifest.get("digest"), str):
    raise BundleError(f"{where}: 'digest' must be a string; the manifest is damaged")
  files = manifest.get("files")
  if not isinstance(files, dict) or not files:
    raise BundleError(f"{where}: lists no files; the manifest is damaged")
  for name, entry in files.items():
    _check_entry(where, name, entry)
  return files


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _check_entry(where: Path, name: str, entry: Any) -> None:
  """One entry: a plain relative path inside the bundle, and exactly its bytes and sha256."""
  parts = name.split("/")
  if (not name or name.startswith("/") or "\\" in name or "\0" in name
      or any(part in ("", ".", "..") for part in parts) or name == MANIFEST):
    raise BundleError(f"{where}: entry {name[:200]!r} is not a plain relative path inside "
                      f"the bundle (absolute, '..', '.', empty part or the manifest itself); "
                      f"the manifest is forged or damaged, use the original bundle")
  if (not isinstance(entry, dict) or set(entry) != {"bytes", "sha256"}
      or type(entry["bytes"]) is not int or entry["bytes"] < 0
      or not isinstance(entry["sha256"], str) or not _SHA256.fullmatch(entry["sha256"])):
    raise BundleError(f"{where}: entry {name!r} must be {{\"bytes\": a non-negative integer, "
                      f"\"sha256\": 64 lowercase hex digits}}, got {str(entry)[:120]}; the "
                      f"manifest is damaged, use the original bundle")


def _check_file(file: Path, entry: dict[str, Any]) -> None:
  # Only files ``_scan`` found as regular files under the root get here: no link is followed.
  size = file.stat(follow_symlinks=False).st_size
  if size != entry["bytes"]:
    raise BundleError(f"{file}: {size} bytes, the manifest says {entry['bytes']}; the "
                      f"file is truncated or altered, copy or download the bundle again")
  if sha256(file) != entry["sha256"]:
    raise BundleError(f"{file}: content does not match its sha256 in the manifest; the "
                      f"file was altered or damaged, copy or download the bundle again")


def verify(path: str | Path, digest: str | None = None) -> dict[str, Any]:
  """Checks a bundle's format, version and every file's size and checksum; returns the manifest.

  The manifest is a flat mapping of plain relative paths to ``{"bytes", "sha256"}``; the
  bundle holds exactly those files and folders, nothing else (no link, no special file), so
  nothing outside it is ever read, not even its size.

  Raises:
    BundleError: naming the first thing wrong (missing, truncated, altered or extra file,
      a link or special file, an entry outside the bundle or of the wrong type, unknown
      format, a format newer than this jaxdigits reads, unexpected digest).
  """
  root = Path(path)
  if not root.is_dir():
    raise BundleError(f"{root}: no such bundle folder (make one with python -m "
                      f"jaxdigits.export --workdir=RUN --out={root})")
  if not (root / MANIFEST).is_file() and (root / "checkpoints").is_dir():
    raise BundleError(f"{root} is a training workdir, not a bundle: export it first with "
                      f"python -m jaxdigits.export --workdir={root} --out=BUNDLE")
  present = _scan(root)  # first: a link named manifest.json is refused before it is read
  manifest = read_json(root / MANIFEST, "the manifest")
  files = _check_header(root, manifest)
  for name in sorted(files):
    if name not in present:
      raise BundleError(f"{root / name}: missing; the bundle is incomplete, copy or download "
                        f"all of it again")
  extra = sorted(present - set(files) - {MANIFEST})
  if extra:
    raise BundleError(f"{root / extra[0]}: not listed in the manifest; files were added to "
                      f"the bundle after export, remove them or use the original bundle")
  for name, entry in sorted(files.items()):
    _check_file(root / name, entry)
  if manifest["digest"] != digest_of(files):
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
