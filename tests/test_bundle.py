"""Bundles: the shipped model, export on several devices and load on one, refusal of bad bundles."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import jaxdigits
from conftest import REPO
from jaxdigits import bundle, manifest
from jaxdigits.cli import export as export_cli
from jaxdigits.errors import CheckpointError

# Trains a tiny run with the sharded strategy on 2 simulated CPU devices and bundles it from
# variables replicated over that mesh, then saves the logits it computes for a fixed batch.
SAVE_ON_TWO_DEVICES = """
import os, sys
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
sys.path.insert(0, "tests")
import jax, numpy as np
from parallel_worker import small_config
from jaxdigits import bundle, records
from jaxdigits.training import engine as train
from jaxdigits.inference import restore
from jaxdigits.inference.predictor import FlaxPredictor
assert jax.device_count() == 2, jax.devices()
run, out = sys.argv[1], sys.argv[2]
config = small_config("sharded", 1)
train.train_and_evaluate(config, run)
config, model, variables = restore.read_run(run)
mesh = jax.sharding.Mesh(jax.devices(), ("data",))
replicated = jax.device_put(variables,
                            jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
assert all(len(x.sharding.device_set) == 2 for x in jax.tree.leaves(replicated))
card = bundle.model_card(config, variables, records.read(run).final)
bundle.save(out, config, replicated, card)
images = np.random.default_rng(0).integers(0, 256, (8, 28, 28, 1), dtype=np.uint8)
np.save(out + ".logits.npy", FlaxPredictor(config, model, variables).logits(images))
"""

LOAD_ON_ONE_DEVICE = """
import sys
import jax, numpy as np, jaxdigits
assert jax.device_count() == 1, jax.devices()
predictor = jaxdigits.load(sys.argv[1])
images = np.random.default_rng(0).integers(0, 256, (8, 28, 28, 1), dtype=np.uint8)
np.testing.assert_allclose(predictor.logits(images), np.load(sys.argv[1] + ".logits.npy"),
                           rtol=1e-5, atol=1e-5)
# The exported files were made from the 2-device variables too.
np.testing.assert_allclose(jaxdigits.load(sys.argv[1], runtime="onnx").logits(images),
                           np.load(sys.argv[1] + ".logits.npy"), rtol=0, atol=1e-4)
print("loaded on", jax.devices()[0].platform)
"""


def _run(code_or_args: list[str], env: dict[str, str], timeout: int = 240):
  return subprocess.run([sys.executable, *code_or_args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=timeout)


@pytest.fixture(scope="module")
def two_device_bundle(tmp_path_factory, data_env):
  """A bundle saved from a 2-device process, and the training run it came from."""
  root = tmp_path_factory.mktemp("bundle")
  out = _run(["-c", SAVE_ON_TWO_DEVICES, str(root / "run"), str(root / "bundle")], data_env)
  assert out.returncode == 0, out.stderr[-3000:]
  return root / "bundle", root / "run"


def test_saved_on_two_devices_loads_on_one(two_device_bundle, data_env):
  env = {k: v for k, v in data_env.items() if k != "XLA_FLAGS"}
  out = _run(["-c", LOAD_ON_ONE_DEVICE, str(two_device_bundle[0])], env)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "loaded on cpu" in out.stdout


def test_export_cli_writes_a_self_describing_bundle(two_device_bundle, data_env, tmp_path):
  run = two_device_bundle[1]
  out = _run(["-m", "jaxdigits.export", f"--workdir={run}", f"--out={tmp_path / 'b'}"], data_env)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "digest" in out.stdout
  names = set(json.loads((tmp_path / "b" / "manifest.json").read_text())["files"])
  assert {"config.json", "model_card.json", "model.onnx", "model.stablehlo"} <= names
  assert any(n.startswith("params/") for n in names)
  card = json.loads((tmp_path / "b" / "model_card.json").read_text())
  # The exported files: made from the same variables, checked against JAX when written.
  exported = card["export"]
  assert exported["contract"]["input"]["shape"] == ["N", 28, 28, 1]
  assert exported["contract"]["output"]["shape"] == ["N", 10]
  for name in ("model.onnx", "model.stablehlo"):
    assert exported["files"][name]["bytes"] == (tmp_path / "b" / name).stat().st_size
    assert exported["files"][name]["probe_max_abs_diff"] <= 1e-4
    assert f"  {name}: " in out.stdout
  assert card["dataset"] == "mnist" and card["splits"]["test"] == 10_000
  assert 0 < card["metrics"]["test_accuracy"] <= 1
  assert set(card["versions"]) >= {"jaxdigits", "jax", "flax"} and card["created"]
  assert "20x20" in card["preprocessing"]
  assert not any(p.suffix in (".pkl", ".pickle") for p in (tmp_path / "b").rglob("*"))
  # Exporting over an existing bundle is refused, not merged.
  again = _run(["-m", "jaxdigits.export", f"--workdir={run}", f"--out={tmp_path / 'b'}"], data_env)
  assert again.returncode == 2 and "already exists" in again.stderr


def test_shipped_model_works_offline():
  files = [p for p in bundle.PRETRAINED.rglob("*") if p.is_file()]
  # Package data: the variables (1.5 MB) and the ONNX and StableHLO exports (1.6 MB each).
  assert sum(p.stat().st_size for p in files) < 5_500_000
  assert {"model.onnx", "model.stablehlo"} <= {p.name for p in files}
  card = json.loads((bundle.PRETRAINED / "model_card.json").read_text())
  assert card["model"]["name"] == "cnn" and card["metrics"]["test_accuracy"] >= 0.99
  predictor = jaxdigits.load()
  seven = np.full((200, 200), 255, np.uint8)
  seven[30:50, 40:160] = 0
  for i in range(130):  # the diagonal
    seven[45 + i, max(0, 150 - i // 2 - 10):150 - i // 2 + 10] = 0
  [result] = predictor.predict([seven])
  assert result.digit == 7, result


@pytest.fixture
def copy(tmp_path):
  path = tmp_path / "b"
  shutil.copytree(bundle.PRETRAINED, path)
  return path


def _largest_param_file(path):
  return max((p for p in (path / "params").rglob("*") if p.is_file()),
             key=lambda p: p.stat().st_size)


def _refused(path, *words, digest=None):
  with pytest.raises(bundle.BundleError) as e:
    if digest:
      bundle.verify(path, digest)
    else:
      jaxdigits.load(path)
  for word in words:
    assert word in str(e.value), str(e.value)
  return str(e.value)


def test_tampered_bundle_is_refused(copy):
  target = _largest_param_file(copy)
  data = bytearray(target.read_bytes())
  data[len(data) // 2] ^= 0xFF
  target.write_bytes(bytes(data))
  _refused(copy, target.name, "altered")


def test_truncated_bundle_is_refused(copy):
  target = _largest_param_file(copy)
  target.write_bytes(target.read_bytes()[:1000])
  _refused(copy, target.name, "truncated")


def test_missing_and_extra_files_are_refused(copy, tmp_path):
  (copy / "model_card.json").unlink()
  _refused(copy, "model_card.json", "missing")
  other = tmp_path / "other"
  shutil.copytree(bundle.PRETRAINED, other)
  (other / "params" / "injected").write_text("x")
  _refused(other, "injected", "not listed in the manifest")


def test_newer_format_and_broken_manifest_are_refused(copy):
  listed = json.loads((copy / "manifest.json").read_text())
  (copy / "manifest.json").write_text(json.dumps({**listed, "format_version": 99}))
  _refused(copy, "format version 99", "upgrade jaxdigits")
  (copy / "manifest.json").write_text(json.dumps(listed)[:-20])
  _refused(copy, "manifest.json", "not valid JSON")
  (copy / "manifest.json").write_text(json.dumps({**listed, "format": "something-else"}))
  _refused(copy, "not a jaxdigits bundle")


def test_unknown_model_and_wrong_digest_are_refused(copy):
  config = json.loads((copy / "config.json").read_text())
  config["model"]["name"] = "transformer9000"
  text = json.dumps(config)
  (copy / "config.json").write_text(text)
  listed = json.loads((copy / "manifest.json").read_text())
  listed["files"]["config.json"] = {"bytes": len(text.encode()),
                                    "sha256": manifest.sha256(copy / "config.json")}
  listed["digest"] = manifest.digest_of(listed["files"])
  (copy / "manifest.json").write_text(json.dumps(listed))
  _refused(copy, "config.json", "transformer9000")
  _refused(bundle.PRETRAINED, "is not the expected", digest="0" * 64)


def test_not_a_bundle_says_what_to_do(tmp_path):
  assert "no such bundle" in _refused_verify(tmp_path / "nowhere")
  (tmp_path / "run" / "checkpoints").mkdir(parents=True)
  assert "training workdir" in _refused_verify(tmp_path / "run")
  with pytest.raises(bundle.BundleError, match="bundle already"):
    bundle.export(bundle.PRETRAINED, tmp_path / "again")
  (tmp_path / "knn" / "classic").mkdir(parents=True)  # no fitted model inside
  with pytest.raises(CheckpointError, match="holds no fitted classic model"):
    bundle.export(tmp_path / "knn", tmp_path / "knn_bundle")
  assert not (tmp_path / "knn_bundle").exists()


def test_export_of_several_runs_says_how_to_serve_an_ensemble(tmp_path, capsys):
  assert export_cli.main([f"--workdir={tmp_path}/a,{tmp_path}/b", f"--out={tmp_path}/e"]) == 2
  err = capsys.readouterr().err
  assert "a bundle holds one model" in err and "--checkpoint=BUNDLE_A,BUNDLE_B" in err, err
  assert not (tmp_path / "e").exists()


def _refused_verify(path) -> str:
  with pytest.raises(bundle.BundleError) as e:
    bundle.verify(path)
  return str(e.value)


def test_import_jaxdigits_is_light():
  code = ("import sys, jaxdigits; "
          "print(sorted(m for m in ('jax', 'flax', 'gradio') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ})
  assert out.stdout.strip() == "[]", out.stderr
