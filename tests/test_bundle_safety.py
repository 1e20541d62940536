"""Hostile bundles: paths outside, links, special files, malformed manifests and configs.

Every case must end in one BundleError naming the file, never in a read outside the bundle
or another exception; the property tests feed random JSON as the manifest and the config.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import jaxdigits
from jaxdigits import bundle, manifest
from jaxdigits.errors import BundleError
from jaxdigits.inference.predictor import Predictor

OUTSIDE = "/etc/passwd"


@pytest.fixture
def copy(tmp_path):
  path = tmp_path / "b"
  shutil.copytree(bundle.PRETRAINED, path)
  return path


def _listed(path: Path) -> dict:
  return json.loads((path / manifest.MANIFEST).read_text())


def _sign(path: Path, listed: dict) -> None:
  """Rewrites the manifest as a forger would: recomputed digest, so only the checks stop it."""
  listed["digest"] = manifest.digest_of(listed["files"])
  (path / manifest.MANIFEST).write_text(json.dumps(listed))


def _refused(path: Path, *words: str) -> str:
  with pytest.raises(BundleError) as e:
    jaxdigits.load(path)
  for word in words:
    assert word in str(e.value), str(e.value)
  return str(e.value)


@pytest.mark.parametrize("name", ["../../../../../../etc/passwd", OUTSIDE, "params/../x",
                                  "./config.json", "a//b", "manifest.json"])
def test_entries_outside_the_bundle_are_refused_unread(copy, name):
  listed = _listed(copy)
  # Right sha256 and a wrong size: the message must not show the outside file's size.
  listed["files"][name] = {"bytes": 1, "sha256": manifest.sha256(Path(OUTSIDE))}
  _sign(copy, listed)
  message = _refused(copy, repr(name), "not a plain relative path")
  assert str(os.path.getsize(OUTSIDE)) not in message


def _link_params_dir(path: Path, outside: Path) -> None:
  shutil.move(path / "params", outside)
  os.symlink(outside, path / "params")


def _link_params_file(path: Path, outside: Path) -> None:
  target = max((p for p in (path / "params").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)
  shutil.move(target, outside)
  os.symlink(outside, target)


@pytest.mark.parametrize("make,name,words", [
    (_link_params_dir, "params", "symbolic link"),
    (_link_params_file, "params/", "symbolic link"),
    (lambda p, _: os.symlink(OUTSIDE, p / "extra"), "extra", "symbolic link"),
    (lambda p, _: os.symlink(p / "loop", p / "loop"), "loop", "symbolic link"),
    (lambda p, _: os.mkfifo(p / "pipe"), "pipe", "special file"),
])
def test_links_and_special_files_are_refused_by_name(copy, tmp_path, make, name, words):
  make(copy, tmp_path / "outside")
  message = _refused(copy, words)
  assert f"{copy}/{name}" in message, message
  with pytest.raises(BundleError, match=words):
    manifest.verify(copy)  # the ONNX runtime's check is this same one


@pytest.mark.parametrize("edit,words", [
    (lambda m: m["files"].__setitem__("config.json", "abc"), "'config.json' must be"),
    (lambda m: m["files"]["config.json"].__setitem__(
        "bytes", str(m["files"]["config.json"]["bytes"])), "'config.json' must be"),
    (lambda m: m["files"]["config.json"].__setitem__("bytes", True), "'config.json' must be"),
    (lambda m: m.__setitem__("format_version", True), "format version True"),
    (lambda m: m.__setitem__("digest", 5), "'digest' must be a string"),
])
def test_wrong_types_in_the_manifest_are_refused(copy, edit, words):
  listed = _listed(copy)
  edit(listed)
  (copy / manifest.MANIFEST).write_text(json.dumps(listed))
  _refused(copy, "manifest.json", words)


def test_deep_or_nonstandard_json_is_refused(copy):
  (copy / manifest.MANIFEST).write_text("[" * 200_000 + "]" * 200_000)
  _refused(copy, "manifest.json", "not a jaxdigits file")
  (copy / manifest.MANIFEST).write_text('{"format": NaN}')
  _refused(copy, "manifest.json", "NaN")


def _write_config(path: Path, text: str) -> None:
  (path / manifest.CONFIG).write_text(text)
  listed = _listed(path)
  listed["files"][manifest.CONFIG] = {"bytes": len(text.encode()),
                                      "sha256": manifest.sha256(path / manifest.CONFIG)}
  _sign(path, listed)


def test_forged_config_is_a_bundle_error(copy):
  config = json.loads((copy / manifest.CONFIG).read_text())
  config["model"]["features"] = "abc"
  _write_config(copy, json.dumps(config))
  _refused(copy, "config.json", "cannot build the bundle's model")
  _write_config(copy, "[1, 2]")
  _refused(copy, "config.json", "not a jaxdigits config")


# Random JSON: every shape and value a forged file can hold.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=12)
NAMES = st.sampled_from(["config.json", "../x", "/etc/passwd", "params", "a/./b", "", "x\\y",
                         "model.onnx"]) | st.text(max_size=12)


def _mutated(original: dict, data) -> object:
  """The real manifest with one part replaced by random JSON (reaches the deeper checks)."""
  listed = json.loads(json.dumps(original))
  where = data.draw(st.sampled_from(["whole", "top", "files", "entry", "field", "name"]))
  if where == "whole":
    return data.draw(JSON)
  if where == "top":
    listed[data.draw(st.sampled_from(["format", "format_version", "digest", "files"]))] = (
        data.draw(JSON))
  elif where == "files":
    listed["files"] = data.draw(JSON)
  else:
    name = data.draw(st.sampled_from(sorted(listed["files"])))
    if where == "entry":
      listed["files"][name] = data.draw(JSON)
    elif where == "field":
      listed["files"][name][data.draw(st.sampled_from(["bytes", "sha256", "x"]))] = (
          data.draw(JSON))
    else:
      listed["files"][data.draw(NAMES)] = listed["files"].pop(name)
    if data.draw(st.booleans()):
      try:
        listed["digest"] = manifest.digest_of(listed["files"])
      except Exception:  # pylint: disable=broad-except  # a forger's digest may not compute
        pass
  return listed


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
  path = tmp_path_factory.mktemp("fuzz") / "b"
  shutil.copytree(bundle.PRETRAINED, path)
  return path


def _loads_or_bundle_error(path: Path) -> None:
  try:
    assert isinstance(bundle.load_predictor(path), Predictor)
  except BundleError:
    pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_manifests_verify_or_raise_bundle_error(fuzzed, data):
  original = (fuzzed / manifest.MANIFEST).read_text()
  (fuzzed / manifest.MANIFEST).write_text(json.dumps(_mutated(json.loads(original), data)))
  try:
    try:
      manifest.verify(fuzzed)
      manifest.read_config(fuzzed)
    except BundleError:
      pass
  finally:
    (fuzzed / manifest.MANIFEST).write_text(original)


def _mutated_config(original: dict, data) -> object:
  config = json.loads(json.dumps(original))
  if data.draw(st.booleans()):
    return data.draw(JSON)
  section = data.draw(st.sampled_from(sorted(config)))
  if data.draw(st.booleans()) or not isinstance(config[section], dict):
    config[section] = data.draw(JSON)
  else:
    config[section][data.draw(st.sampled_from(sorted(config[section]) or ["x"]))] = (
        data.draw(JSON))
  return config


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_bundled_configs_load_or_raise_bundle_error(fuzzed, data):
  saved = {n: (fuzzed / n).read_text() for n in (manifest.MANIFEST, manifest.CONFIG)}
  try:
    _write_config(fuzzed, json.dumps(_mutated_config(json.loads(saved[manifest.CONFIG]), data)))
    _loads_or_bundle_error(fuzzed)
  finally:
    for name, text in saved.items():
      (fuzzed / name).write_text(text)


def _checksums(root: Path) -> dict[str, str]:
  return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(root.rglob("*")) if p.is_file()}


def test_export_inside_a_training_workdir_is_refused(tiny_knn_run, tmp_path):
  run = tiny_knn_run()
  flax_run = tmp_path / "run"
  (flax_run / "checkpoints").mkdir(parents=True)
  before = _checksums(run)
  for out in (run / "classic" / "99", run / "sub" / "b", flax_run / "checkpoints" / "99",
              bundle.PRETRAINED / "inner"):
    with pytest.raises(BundleError, match="inside the (training workdir|bundle)"):
      bundle.export(run, out)
    assert not out.exists()
  assert _checksums(run) == before
  assert not (run / "sub").exists()
  jaxdigits.load(run)  # the run still loads
