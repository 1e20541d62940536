"""The one loader and the Predictor contract: every kind of path, composition, refusals."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

import jaxdigits
from jaxdigits import bundle
from jaxdigits.data import load_tfds
from jaxdigits.errors import CheckpointError, ConfigError, ImageError
from jaxdigits.inference import load as load_lib
from jaxdigits.inference.onnx_runtime import OnnxPredictor
from jaxdigits.inference.predictor import ClassicPredictor, FlaxPredictor
from jaxdigits.inference.wrappers import Augmented, Ensemble


@pytest.fixture(scope="module")
def images(raw_dir, tfds_dir):
  return load_tfds("mnist", "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir), stop=64).images


def test_every_kind_of_path_loads_the_same_model(tiny_run, tiny_knn_run, images):
  run, knn = tiny_run("mnist"), tiny_knn_run("mnist")
  for paths, cls, name in (((None, bundle.PRETRAINED), FlaxPredictor, "cnn"),
                           ((run, run / "checkpoints"), FlaxPredictor, "cnn"),
                           ((knn, knn / "classic"), ClassicPredictor, "knn")):
    a, b = (jaxdigits.load(p) for p in paths)
    assert type(a) is type(b) is cls and a.config.model.name == name
    assert a.input_shape == (28, 28, 1)
    np.testing.assert_allclose(a.logits(images), b.logits(images), rtol=1e-6)
    assert load_lib.locate(paths[-1])[1] == load_lib.locate(paths[0] or bundle.PRETRAINED)[1]


def test_a_flax_run_restores_only_inference_variables(tiny_run):
  predictor = jaxdigits.load(tiny_run("mnist"))
  assert set(predictor.variables) == {"params", "batch_stats"}  # no opt_state, no step
  assert {f.name for f in dataclasses.fields(predictor)} == {
      "config", "module", "variables", "batch_size", "detector"}


def test_wrappers_compose_and_hold_only_what_they_need(tiny_run, tiny_knn_run, images):
  run, knn = tiny_run("mnist"), tiny_knn_run("mnist")
  ensemble = jaxdigits.load([run, knn], tta=True)
  assert isinstance(ensemble, Augmented) and isinstance(ensemble.base, Ensemble)
  assert {f.name for f in dataclasses.fields(Ensemble)} == {"members"}
  assert {f.name for f in dataclasses.fields(Augmented)} == {"base", "views"}
  assert ensemble.config is ensemble.base.members[0].config  # the first member's, not a copy
  views = ((0.0, 1.0, 0.0, 0.0), (0.0, 1.0, 1.0, 0.0))
  members = [jaxdigits.load(run), jaxdigits.load(knn)]
  by_hand = np.mean([Augmented(m, views).probabilities(images) for m in members], axis=0)
  composed = Ensemble(tuple(Augmented(m, views) for m in members)).probabilities(images)
  np.testing.assert_allclose(composed, by_hand, rtol=1e-5, atol=1e-7)
  assert np.mean(composed.argmax(-1) == ensemble.probabilities(images).argmax(-1)) > 0.9


def test_missing_empty_and_foreign_paths_say_what_is_expected(tmp_path):
  for path in (tmp_path / "nowhere", tmp_path):
    with pytest.raises(CheckpointError) as e:
      jaxdigits.load(path)
    assert str(path) in str(e.value) and "bundle folder" in str(e.value)
    assert "training workdir" in str(e.value) and "classic" in str(e.value)
  with pytest.raises(CheckpointError, match="no model given"):
    jaxdigits.load([])
  (tmp_path / "run" / "classic").mkdir(parents=True)
  with pytest.raises(CheckpointError, match="state.npz"):
    jaxdigits.load(tmp_path / "run")
  (tmp_path / "run2" / "checkpoints").mkdir(parents=True)
  with pytest.raises(CheckpointError, match="run2"):
    jaxdigits.load(tmp_path / "run2")


def test_a_damaged_bundle_is_refused_by_the_loader(tmp_path):
  copy = tmp_path / "b"
  shutil.copytree(bundle.PRETRAINED, copy)
  (copy / "model_card.json").write_text("{}")
  with pytest.raises(bundle.BundleError, match="model_card.json"):
    jaxdigits.load(copy)


def test_ensemble_members_must_read_one_shape_and_the_odd_one_is_named(tiny_knn_run):
  usps = tiny_knn_run("usps", mnist_style=False)  # native 16x16 digits
  with pytest.raises(ConfigError) as e:
    jaxdigits.load([tiny_knn_run("mnist"), usps])
  assert str(e.value).startswith(str(usps)) and "(16, 16, 1)" in str(e.value)


def test_images_of_the_wrong_shape_and_a_model_without_new_images_are_refused(tiny_knn_run,
                                                                                images):
  usps = jaxdigits.load(tiny_knn_run("usps", mnist_style=False))
  with pytest.raises(ImageError, match="16, 16, 1"):
    usps.logits(images)
  assert usps.logits(np.zeros((2, 16, 16, 1), np.uint8)).shape == (2, 10)
  with pytest.raises(ConfigError, match="mnist_style=True"):
    usps.predict([images[0]])  # once for the call, not once per image
  with pytest.raises(ConfigError, match="mnist_style=True"):
    usps.prepare(images[0])


def test_an_ensemble_of_bundles_serves_alike_with_either_runtime(tiny_run, images, tmp_path):
  bundle.export(tiny_run("mnist"), tmp_path / "tiny")
  paths = [bundle.PRETRAINED, tmp_path / "tiny"]
  served = jaxdigits.load(paths, runtime="onnx")
  assert isinstance(served, Ensemble)
  assert all(isinstance(m, OnnxPredictor) for m in served.members)
  want = jaxdigits.load(paths).logits(images)
  np.testing.assert_allclose(served.logits(images), want, rtol=0, atol=1e-4)
  np.testing.assert_array_equal(served.logits(images).argmax(-1), want.argmax(-1))


def test_the_onnx_runtime_serves_bundles_only_and_without_tta(tiny_run, tiny_knn_run):
  with pytest.raises(ConfigError, match="runtime 'tensorflow': not one of jax, onnx"):
    jaxdigits.load(runtime="tensorflow")
  with pytest.raises(ConfigError, match=r"test-time augmentation \(--tta\) has no ONNX form"):
    jaxdigits.load(tta=True, runtime="onnx")
  run = tiny_run("mnist")
  with pytest.raises(ConfigError) as e:
    jaxdigits.load(run, runtime="onnx")
  assert str(e.value).startswith(f"{run}: a flax run; runtime 'onnx' serves bundles only")
  assert f"python -m jaxdigits.export --workdir={run} --out=BUNDLE" in str(e.value)
  knn = tiny_knn_run("mnist")
  with pytest.raises(ConfigError, match=f"{knn}: a classic run; runtime 'onnx' serves bundles"):
    jaxdigits.load([bundle.PRETRAINED, knn], runtime="onnx")
