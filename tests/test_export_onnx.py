"""ONNX and StableHLO exports: the same logits as JAX on all of MNIST test, served without JAX.

Fidelity does not need trained weights, so the ResNet and M5 layouts are randomly
initialised; the CNN is the shipped, trained one. BatchNorm runs in inference mode.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import onnx
import pytest
from PIL import Image

import jaxdigits
from conftest import REPO
from jaxdigits import config as config_lib, exporters, models
from jaxdigits.data import augment, load_tfds
from jaxdigits.errors import BundleError
from jaxdigits.exporters import onnx as onnx_export, stablehlo
from jaxdigits.inference import wrappers
from jaxdigits.inference.onnx_runtime import OnnxPredictor, Prediction
from jaxdigits.inference.predictor import ClassicPredictor, FlaxPredictor
from jaxdigits.models import classic, features

TOL = 1e-4


@pytest.fixture(scope="module")
def mnist_test(raw_dir, tfds_dir):
  return load_tfds("mnist", "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir))


@pytest.fixture(scope="module")
def shipped():
  return jaxdigits.load()


@pytest.fixture(scope="module")
def shipped_files(shipped, tmp_path_factory):
  out = tmp_path_factory.mktemp("export")
  card = exporters.export_all(shipped, out)
  return out, card["files"][exporters.ONNX_FILE], card["files"][exporters.STABLEHLO_FILE]


def random_flax(config_file: str, **model_changes) -> FlaxPredictor:
  config = config_lib.load_file(REPO / "configs" / config_file)
  config.model.update(model_changes)
  module = models.build(config.model)
  variables = module.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), train=False)
  # Non-trivial BatchNorm statistics, so that inference mode (running averages) is what
  # both exports must reproduce.
  keys = iter(jax.random.split(jax.random.key(1), 1000))
  stats = jax.tree.map(lambda v: v + 0.1 * jax.random.uniform(next(keys), v.shape),
                       variables["batch_stats"])
  return FlaxPredictor(config, module, {**variables, "batch_stats": stats})


def stablehlo_logits(path, images: np.ndarray, batch: int = 500) -> np.ndarray:
  loaded = stablehlo.load_stablehlo(path)
  return np.concatenate([loaded(images[i:i + batch].astype(np.float32) / np.float32(255))
                         for i in range(0, len(images), batch)])


def assert_same(got: np.ndarray, want: np.ndarray, what: str) -> None:
  assert got.shape == want.shape, what
  gap = np.max(np.abs(got - want))
  assert gap <= TOL, f"{what}: max |logit difference| {gap:.3g}"
  disagree = np.flatnonzero(got.argmax(-1) != want.argmax(-1))
  assert disagree.size == 0, f"{what}: argmax differs on images {disagree[:10]}"


def check_both(predictor, images: np.ndarray, tmp_path) -> None:
  want = np.asarray(predictor.logits(images), np.float32)
  onnx_export.to_onnx(exporters.forward_of(predictor, "onnx"), tmp_path / "m.onnx")
  assert_same(OnnxPredictor.load(tmp_path / "m.onnx").logits(images), want, "onnx")
  check_stablehlo(predictor, images, tmp_path, want)


def check_stablehlo(predictor, images: np.ndarray, tmp_path, want=None) -> None:
  want = np.asarray(predictor.logits(images), np.float32) if want is None else want
  stablehlo.to_stablehlo(exporters.forward_of(predictor, "stablehlo"), tmp_path / "m.stablehlo")
  assert_same(stablehlo_logits(tmp_path / "m.stablehlo", images), want, "stablehlo")


def test_shipped_cnn_exports_equal_jax_on_mnist_test(shipped, shipped_files, mnist_test):
  out, onnx_info, hlo_info = shipped_files
  want = shipped.logits(mnist_test.images)
  served = OnnxPredictor.load(out / exporters.ONNX_FILE)
  assert_same(served.logits(mnist_test.images), want, "onnx")
  assert_same(stablehlo_logits(out / exporters.STABLEHLO_FILE, mnist_test.images), want,
              "stablehlo")
  # Any batch size, one compiled file: a single image and an odd batch.
  for n in (1, 7):
    assert_same(served.logits(mnist_test.images[:n]), want[:n], f"onnx N={n}")
    assert_same(stablehlo_logits(out / exporters.STABLEHLO_FILE, mnist_test.images[:n]),
                want[:n], f"stablehlo N={n}")
  assert served.input_shape == (28, 28, 1)
  assert onnx_info["opset"] == onnx_export.OPSET
  assert set(hlo_info["platforms"]) == {"cpu", "cuda"}
  accuracy = np.mean(served.logits(mnist_test.images).argmax(-1) == mnist_test.labels)
  assert accuracy > 0.98, accuracy  # the trained weights came through, not just shapes


@pytest.mark.parametrize("config_file,changes", [
    ("resnet.py", {}),
    # The M5 layout (five VALID 5x5 conv-BN-ReLU layers, no pooling, no hidden dense) at a
    # quarter of its width; the full width runs in the slow test below.
    ("m5.py", {"features": (8, 16, 24, 32, 40)}),
], ids=["resnet", "m5_narrow"])
def test_layouts_export_equal_jax_on_mnist_test(config_file, changes, mnist_test, tmp_path):
  check_both(random_flax(config_file, **changes), mnist_test.images, tmp_path)


@pytest.mark.slow
def test_full_width_m5_exports_equal_jax_on_mnist_test(mnist_test, tmp_path):
  # ~4 minutes on a shared 2-core CPU: XLA runs M5 on 10,000 images in ~100 s, twice.
  check_both(random_flax("m5.py"), mnist_test.images, tmp_path)


def test_ensemble_exports_as_one_graph(mnist_test, tmp_path):
  members = [random_flax("cnn.py", features=(8, 16), dense=32) for _ in range(2)]
  # Different weights per member: re-initialise the second.
  second = members[1]
  variables = second.module.init(jax.random.key(7), jnp.zeros((1, 28, 28, 1)), train=False)
  members[1] = FlaxPredictor(second.config, second.module, variables)
  ensemble = wrappers.Ensemble((members[0], members[1]))
  check_both(ensemble, mnist_test.images[:2000], tmp_path)
  graph = onnx.load(tmp_path / "m.onnx").graph
  assert len(graph.input) == 1 and len(graph.output) == 1


def test_test_time_augmentation_exports_to_stablehlo_only(shipped, mnist_test, tmp_path):
  augmented = wrappers.Augmented(shipped, augment.TTA_VIEWS)
  card = exporters.export_all(augmented, tmp_path)
  assert "test-time augmentation (--tta) does not export to ONNX" in (
      card["files"][exporters.ONNX_FILE]["refused"])
  assert not (tmp_path / exporters.ONNX_FILE).exists()
  images = mnist_test.images[:1000]
  assert_same(stablehlo_logits(tmp_path / exporters.STABLEHLO_FILE, images),
              np.asarray(augmented.logits(images), np.float32), "stablehlo")
  assert card["contract"]["input"]["shape"] == ["N", 28, 28, 1]


def fake_linear_svm(feature: str) -> ClassicPredictor:
  rng = np.random.default_rng(0)
  dims = features.compute(feature, np.zeros((1, 28, 28, 1), np.uint8)).shape[1]
  arrays = {"mean": rng.random(dims, np.float32), "std": 0.5 + rng.random(dims, np.float32),
            "w": rng.normal(0, 0.05, (dims, 10)).astype(np.float32),
            "b": rng.normal(0, 0.1, 10).astype(np.float32)}
  model = ml_collections.ConfigDict({"name": "linear_svm", "features": feature})
  config = config_lib.defaults()
  config.model = model
  return ClassicPredictor(config, classic.Classic("linear_svm", classic.settings(model), arrays))


def test_linear_svm_exports_and_hog_is_stablehlo_only(mnist_test, tmp_path):
  images = mnist_test.images[:1000]
  check_both(fake_linear_svm("pixels"), images, tmp_path)
  hog = fake_linear_svm("hog")
  check_stablehlo(hog, images, tmp_path)
  with pytest.raises(BundleError, match="a linear_svm on HOG features does not export to ONNX"):
    exporters.forward_of(hog, "onnx")


@pytest.mark.parametrize("name", ["knn", "svm", "random_forest"])
def test_other_classic_models_are_refused_by_name(name):
  fitted = classic.Classic(name, classic.settings(ml_collections.ConfigDict({"name": name})))
  with pytest.raises(BundleError, match=f"a {name} model cannot be exported"):
    exporters.forward_of(ClassicPredictor(config_lib.defaults(), fitted), "stablehlo")


def test_changed_onnx_byte_is_refused(shipped_files, tmp_path):
  out, _, _ = shipped_files
  data = bytearray((out / exporters.ONNX_FILE).read_bytes())
  digest = hashlib.sha256(data).hexdigest()
  data[len(data) // 2] ^= 1  # inside the weights: still a valid protobuf
  changed = tmp_path / exporters.ONNX_FILE
  changed.write_bytes(bytes(data))
  with pytest.raises(BundleError, match=f"{changed}: its sha256 differs"):
    OnnxPredictor.load(changed, sha256=digest)
  changed.write_bytes(bytes(data[:1000]))  # truncated: not even a model
  with pytest.raises(BundleError, match=f"{changed}: onnxruntime cannot load it"):
    OnnxPredictor.load(changed)


def test_non_finite_logits_are_refused(shipped_files, tmp_path):
  out, _, _ = shipped_files
  model = onnx.load(out / exporters.ONNX_FILE)
  weights = max(model.graph.initializer, key=lambda t: len(t.raw_data))
  array = onnx.numpy_helper.to_array(weights).copy()
  array.flat[:] = np.nan
  weights.CopyFrom(onnx.numpy_helper.from_array(array, weights.name))
  damaged = tmp_path / "nan.onnx"
  onnx.save(model, damaged)
  with pytest.raises(BundleError, match=f"{damaged}: the model gave non-finite logits"):
    OnnxPredictor.load(damaged).logits(np.zeros((2, 28, 28, 1), np.uint8))


def test_damaged_stablehlo_is_refused(shipped_files, tmp_path):
  out, _, _ = shipped_files
  damaged = tmp_path / exporters.STABLEHLO_FILE
  damaged.write_bytes((out / exporters.STABLEHLO_FILE).read_bytes()[:5000])
  with pytest.raises(BundleError, match=f"{damaged}: not a serialised jax.export"):
    stablehlo.load_stablehlo(damaged)


SERVE_WITHOUT_JAX = """
import json, sys
from jaxdigits.inference.onnx_runtime import OnnxPredictor
result = OnnxPredictor.load(sys.argv[1]).predict([sys.argv[2]])[0]
heavy = sorted(m for m in sys.modules if m.split(".")[0] in
               ("jax", "jaxlib", "flax", "optax", "orbax", "tensorflow_datasets"))
print(json.dumps({"digit": result.digit, "probability": result.probability, "heavy": heavy}))
"""


def test_onnx_predictor_serves_a_png_without_importing_jax(shipped, shipped_files, mnist_test,
                                                           tmp_path):
  out, _, _ = shipped_files
  png = tmp_path / "digit.png"
  Image.fromarray(255 - mnist_test.images[0, ..., 0]).save(png)  # dark ink on white paper
  run = subprocess.run([sys.executable, "-c", SERVE_WITHOUT_JAX, str(out / exporters.ONNX_FILE),
                        str(png)], capture_output=True, text=True, timeout=120, cwd=REPO,
                       check=True)
  answer = json.loads(run.stdout.strip().splitlines()[-1])
  assert answer["heavy"] == []
  # The same preprocessing and the same answer as the JAX predictor.
  want = shipped.predict([png])[0]
  assert answer["digit"] == want.digit == mnist_test.labels[0]
  assert abs(answer["probability"] - want.probability) < 1e-5


def test_onnx_predictor_keeps_the_predictor_contract(shipped, shipped_files, mnist_test,
                                                    tmp_path):
  out, _, _ = shipped_files
  served = OnnxPredictor.load(out / exporters.ONNX_FILE)
  sources = [tmp_path / "missing.png", 255 - mnist_test.images[1, ..., 0],
             np.full((40, 30), 255, np.uint8)]  # no such file; a digit; blank paper
  got, want = served.predict(sources), shipped.predict(sources)
  assert [type(r).__name__ for r in got] == [type(r).__name__ for r in want] == [
      "ImageError", "Prediction", "ImageError"]
  assert [str(e) for e in (got[0], got[2])] == [str(e) for e in (want[0], want[2])]
  assert got[1].to_json()["digit"] == want[1].digit == mnist_test.labels[1]
  assert [d for d, _ in got[1].top3] == [d for d, _ in want[1].top3]
  with pytest.raises(jaxdigits.errors.ImageError, match=r"reads \[N, 28, 28, 1\]"):
    served.logits(np.zeros((1, 16, 16, 1), np.uint8))
  probs = served.probabilities(np.zeros((3, 28, 28, 1), np.uint8))
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-9)
  assert served.logits(np.zeros((0, 28, 28, 1), np.uint8)).shape == (0, 10)
