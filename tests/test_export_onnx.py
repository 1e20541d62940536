"""ONNX and StableHLO exports: JAX's logits on MNIST test, served without JAX, refused when changed.

What each test covers (tolerance: max |logit - JAX's| <= 1e-4, argmax equal on every image):

* the shipped bundle's own ``model.onnx`` and ``model.stablehlo`` (the trained CNN) on all
  10,000 MNIST test images, and on batches of 1 and 7 (the batch is symbolic);
* exports made here of the ResNet layout (configs/resnet.py, full width) and the M5 layout at
  a quarter of its width on all 10,000 images, and M5 at full width on the first 500 (XLA
  needs ~6 s of CPU per 1,000 full-width M5 images, twice: all 10,000 would cost ~2 minutes);
  these are randomly initialised (fidelity needs no training) with non-trivial BatchNorm
  statistics, so inference mode is what both files must reproduce;
* an ensemble exported as one graph (2,000 images), test-time augmentation exported to
  StableHLO and refused for ONNX (300 images), the linear SVM (both formats; HOG features:
  StableHLO only, 1,000 images), the other classic models refused by name; bundles of
  classic runs (a linear SVM: both files; kNN: neither, and why, by name); without the
  'onnx' extra, the model card says how to add model.onnx;
* a changed byte of a bundle's ``model.onnx``: refused by ``jaxdigits.load(runtime="onnx")``
  and ``export --verify``, naming the file; a bundle without the exported files (as written
  before they existed) loads with JAX and is refused by name for ONNX; damaged files;
* serving: ``jaxdigits.load(bundle, runtime="onnx").predict([png])`` and the predict
  command with ``--runtime=onnx``, in a fresh interpreter, import no jax, jaxlib, flax,
  optax, orbax or tensorflow_datasets and answer as JAX does; the
  Predictor contract; ``predict --runtime=onnx`` gives ``--runtime=jax``'s digits; the demo
  with ``--runtime=onnx`` serves ``/predict``.

The whole file: 72 s wall, 93 s of CPU (user + system) on the shared 2-core machine, with
the session's MNIST preparation and kNN fit (shared fixtures) included.
"""

from __future__ import annotations

import json
import shutil
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
from demo_server import running_demo
from jaxdigits import bundle, config as config_lib, exporters, manifest, models
from jaxdigits.cli import export as export_cli, predict as predict_cli
from jaxdigits.data import augment, load_tfds
from jaxdigits.errors import BundleError, ImageError
from jaxdigits.exporters import onnx as onnx_export, stablehlo
from jaxdigits.inference import wrappers
from jaxdigits.inference.onnx_runtime import OnnxPredictor
from jaxdigits.inference.predictor import ClassicPredictor, FlaxPredictor
from jaxdigits.models import classic, features

TOL = 1e-4
SHIPPED = bundle.PRETRAINED


@pytest.fixture(scope="module")
def mnist_test(raw_dir, tfds_dir):
  return load_tfds("mnist", "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir))


@pytest.fixture(scope="module")
def shipped():
  return jaxdigits.load()


@pytest.fixture(scope="module")
def pngs(mnist_test, tmp_path_factory):
  """Three test digits as a user's files: dark ink on white paper."""
  root = tmp_path_factory.mktemp("pngs")
  paths = [root / f"digit{i}.png" for i in range(3)]
  for i, path in enumerate(paths):
    Image.fromarray(255 - mnist_test.images[i, ..., 0]).save(path)
  return paths


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
  return np.concatenate([loaded(images[i:i + batch].astype(np.float32) * np.float32(1 / 255))
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
  assert_same(OnnxPredictor.load(tmp_path / "m.onnx", predictor.config).logits(images), want,
              "onnx")
  check_stablehlo(predictor, images, tmp_path, want)


def check_stablehlo(predictor, images: np.ndarray, tmp_path, want=None) -> None:
  want = np.asarray(predictor.logits(images), np.float32) if want is None else want
  stablehlo.to_stablehlo(exporters.forward_of(predictor, "stablehlo"), tmp_path / "m.stablehlo")
  assert_same(stablehlo_logits(tmp_path / "m.stablehlo", images), want, "stablehlo")


def test_shipped_bundle_exports_equal_jax_on_mnist_test(shipped, mnist_test):
  want = shipped.logits(mnist_test.images)
  served = jaxdigits.load(runtime="onnx")
  assert isinstance(served, OnnxPredictor) and served.path == SHIPPED / manifest.ONNX
  assert_same(served.logits(mnist_test.images), want, "onnx")
  assert_same(stablehlo_logits(SHIPPED / manifest.STABLEHLO, mnist_test.images), want,
              "stablehlo")
  # Any batch size, one compiled file: a single image and an odd batch.
  for n in (1, 7):
    assert_same(served.logits(mnist_test.images[:n]), want[:n], f"onnx N={n}")
    assert_same(stablehlo_logits(SHIPPED / manifest.STABLEHLO, mnist_test.images[:n]),
                want[:n], f"stablehlo N={n}")
  card = json.loads((SHIPPED / manifest.CARD).read_text())["export"]
  assert card["contract"]["input"] == {
      "dtype": "float32", "shape": ["N", 28, 28, 1], "range": [0.0, 1.0],
      "format": "MNIST-style: bright ink on black, as jaxdigits.inference.preprocess."
                "to_mnist_style makes it, divided by 255"}
  assert card["contract"]["output"]["shape"] == ["N", 10]
  assert card["files"][manifest.ONNX]["opset"] == onnx_export.OPSET
  assert set(card["files"][manifest.STABLEHLO]["platforms"]) == {"cpu", "cuda"}
  accuracy = np.mean(served.logits(mnist_test.images).argmax(-1) == mnist_test.labels)
  assert accuracy > 0.99, accuracy  # the trained weights came through, not just shapes


@pytest.mark.parametrize("config_file,changes,count", [
    ("resnet.py", {}, 10_000),
    # The M5 layout (five VALID 5x5 conv-BN-ReLU layers, no pooling, no hidden dense).
    ("m5.py", {"features": (8, 16, 24, 32, 40)}, 10_000),
    ("m5.py", {}, 500),
], ids=["resnet", "m5_quarter_width", "m5_full_width"])
def test_layouts_export_equal_jax_on_mnist_test(config_file, changes, count, mnist_test,
                                                tmp_path):
  check_both(random_flax(config_file, **changes), mnist_test.images[:count], tmp_path)


def test_ensemble_exports_as_one_graph(mnist_test, tmp_path):
  first = random_flax("cnn.py", features=(8, 16), dense=32)
  # Different weights for the second member.
  second = FlaxPredictor(first.config, first.module, first.module.init(
      jax.random.key(7), jnp.zeros((1, 28, 28, 1)), train=False))
  check_both(wrappers.Ensemble((first, second)), mnist_test.images[:2000], tmp_path)
  graph = onnx.load(tmp_path / "m.onnx").graph
  assert len(graph.input) == 1 and len(graph.output) == 1


def test_test_time_augmentation_exports_to_stablehlo_only(shipped, mnist_test, tmp_path):
  augmented = wrappers.Augmented(shipped, augment.TTA_VIEWS)
  card = exporters.export_all(augmented, tmp_path)
  assert "test-time augmentation (--tta) does not export to ONNX" in (
      card["files"][manifest.ONNX]["refused"])
  assert not (tmp_path / manifest.ONNX).exists()
  images = mnist_test.images[:300]
  assert_same(stablehlo_logits(tmp_path / manifest.STABLEHLO, images),
              np.asarray(augmented.logits(images), np.float32), "stablehlo")
  assert card["contract"]["input"]["shape"] == ["N", 28, 28, 1]


def test_without_the_onnx_extra_the_card_says_how_to_add_the_file(shipped, tmp_path,
                                                                  monkeypatch):
  monkeypatch.setattr(onnx_export, "REQUIRES", ("jax2onnx", "not_installed_converter"))
  card = exporters.export_all(shipped, tmp_path)
  assert card["files"][manifest.ONNX] == {"refused": "ONNX export needs not_installed_converter: "
                                                     "pip install 'jaxdigits[onnx]', then "
                                                     "export again"}
  assert not (tmp_path / manifest.ONNX).exists()
  assert (tmp_path / manifest.STABLEHLO).is_file()  # the other format is still written


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


def test_classic_runs_bundle_with_what_they_export(tiny_knn_run, mnist_test, tmp_path,
                                                   capsys):
  images = mnist_test.images[:500]
  svm = fake_linear_svm("pixels")
  classic.save(svm.fitted, svm.config, tmp_path / "svm_run" / classic.STATE_DIR)  # as a fit
  for run, name in ((tmp_path / "svm_run", "svm"), (tiny_knn_run("mnist"), "knn")):
    assert export_cli.main([f"--workdir={run}", f"--out={tmp_path / name}"]) == 0
    assert isinstance(jaxdigits.load(tmp_path / name), ClassicPredictor)
  # The linear SVM: both files, served by onnxruntime as by JAX.
  served = jaxdigits.load(tmp_path / "svm", runtime="onnx")
  assert_same(served.logits(images), np.asarray(svm.logits(images), np.float32), "svm onnx")
  assert_same(stablehlo_logits(tmp_path / "svm" / manifest.STABLEHLO, images),
              np.asarray(svm.logits(images), np.float32), "svm stablehlo")
  # kNN: neither file; the card, the export command and the ONNX loader say why, by name.
  knn = tmp_path / "knn"
  np.testing.assert_array_equal(jaxdigits.load(knn).logits(images),
                                jaxdigits.load(tiny_knn_run("mnist")).logits(images))
  assert not (knn / manifest.ONNX).exists() and not (knn / manifest.STABLEHLO).exists()
  out = capsys.readouterr().out
  assert f"{manifest.ONNX}: not written: a knn model cannot be exported to ONNX" in out, out
  with pytest.raises(BundleError, match="does not export to that format .a knn model cannot"):
    jaxdigits.load(knn, runtime="onnx")
  assert export_cli.main([f"--verify={knn}"]) == 0
  with pytest.raises(BundleError, match="holds a classic model, not Flax variables"):
    bundle.read(knn)


@pytest.mark.parametrize("name", ["knn", "svm", "random_forest"])
def test_other_classic_models_are_refused_by_name(name):
  fitted = classic.Classic(name, classic.settings(ml_collections.ConfigDict({"name": name})))
  with pytest.raises(BundleError, match=f"a {name} model cannot be exported"):
    exporters.forward_of(ClassicPredictor(config_lib.defaults(), fitted), "stablehlo")


@pytest.fixture
def copy(tmp_path):
  path = tmp_path / "bundle"
  shutil.copytree(SHIPPED, path)
  return path


def test_a_changed_onnx_byte_is_refused_by_the_manifest(copy, capsys):
  onnx_file = copy / manifest.ONNX
  data = bytearray(onnx_file.read_bytes())
  data[len(data) // 2] ^= 1  # inside the weights: still a valid protobuf, same size
  onnx_file.write_bytes(bytes(data))
  for runtime in ("onnx", "jax"):  # either runtime verifies every file of the bundle
    with pytest.raises(BundleError, match=f"{onnx_file}: content does not match its sha256"):
      jaxdigits.load(copy, runtime=runtime)
  assert export_cli.main([f"--verify={copy}"]) == 2
  err = capsys.readouterr().err
  assert f"{onnx_file}: content does not match its sha256" in err, err
  # The loader re-checks the bytes it hands onnxruntime against the manifest's checksum.
  entry = json.loads((SHIPPED / manifest.MANIFEST).read_text())["files"][manifest.ONNX]
  with pytest.raises(BundleError, match=f"{onnx_file}: its sha256 differs"):
    OnnxPredictor.load(onnx_file, manifest.read_config(SHIPPED), sha256=entry["sha256"])


def test_verify_runs_both_exported_files(capsys):
  assert export_cli.main([f"--verify={SHIPPED}"]) == 0
  out = capsys.readouterr().out
  for name in (manifest.ONNX, manifest.STABLEHLO):
    gap = float(out.split(f"{name}: max |logit - JAX's| ")[1].split()[0])
    assert gap <= TOL, out


def drop_exports(path, card_files=None) -> None:
  """Turns a bundle into one written before the exported files existed (or, with
  ``card_files``, one whose model card says why they are absent)."""
  listed = json.loads((path / manifest.MANIFEST).read_text())
  card = json.loads((path / manifest.CARD).read_text())
  card.pop("export")
  if card_files:
    card["export"] = {"files": card_files}
  (path / manifest.CARD).write_text(json.dumps(card))
  for name in (manifest.ONNX, manifest.STABLEHLO):
    (path / name).unlink()
  (path / manifest.MANIFEST).unlink()
  assert set(listed["files"]) - set(manifest.write(path)["files"]) == {manifest.ONNX,
                                                                       manifest.STABLEHLO}


def test_a_bundle_without_exports_loads_with_jax_and_is_refused_for_onnx(copy, shipped,
                                                                         mnist_test):
  drop_exports(copy)
  images = mnist_test.images[:100]
  np.testing.assert_array_equal(jaxdigits.load(copy).logits(images), shipped.logits(images))
  with pytest.raises(BundleError) as e:
    jaxdigits.load(copy, runtime="onnx")
  assert str(e.value).startswith(f"{copy / manifest.ONNX}: not in this bundle")
  assert "re-export" in str(e.value) and "--runtime=jax" in str(e.value)
  assert export_cli.main([f"--verify={copy}"]) == 0  # nothing to run, nothing wrong


def test_a_model_without_onnx_form_is_refused_with_the_reason(copy):
  drop_exports(copy, {manifest.ONNX: {"refused": "a knn model cannot be exported to ONNX"}})
  with pytest.raises(BundleError, match="does not export to that format .a knn model cannot"):
    jaxdigits.load(copy, runtime="onnx")


def test_damaged_files_are_refused(tmp_path):
  config = manifest.read_config(SHIPPED)
  truncated = tmp_path / manifest.ONNX
  truncated.write_bytes((SHIPPED / manifest.ONNX).read_bytes()[:1000])  # not even a model
  with pytest.raises(BundleError, match=f"{truncated}: onnxruntime cannot load it"):
    OnnxPredictor.load(truncated, config)
  model = onnx.load(SHIPPED / manifest.ONNX)
  weights = max(model.graph.initializer, key=lambda t: len(t.raw_data))
  array = onnx.numpy_helper.to_array(weights).copy()
  array.flat[:] = np.nan
  weights.CopyFrom(onnx.numpy_helper.from_array(array, weights.name))
  nan = tmp_path / "nan.onnx"
  onnx.save(model, nan)
  with pytest.raises(BundleError, match=f"{nan}: the model gave non-finite logits"):
    OnnxPredictor.load(nan, config).logits(np.zeros((2, 28, 28, 1), np.uint8))
  usps = config.copy_and_resolve_references()
  usps.data.dataset, usps.data.mnist_style = "usps", False  # a 16x16 model's config
  with pytest.raises(BundleError, match=r"expected one input \[N, 16, 16, 1\]"):
    OnnxPredictor.load(SHIPPED / manifest.ONNX, usps)
  damaged = tmp_path / manifest.STABLEHLO
  damaged.write_bytes((SHIPPED / manifest.STABLEHLO).read_bytes()[:5000])
  with pytest.raises(BundleError, match=f"{damaged}: not a serialised jax.export"):
    stablehlo.load_stablehlo(damaged)


SERVE_WITHOUT_JAX = """
import contextlib, io, json, sys
import jaxdigits
from jaxdigits.cli import predict
result = jaxdigits.load(sys.argv[1], runtime="onnx").predict([sys.argv[2]])[0]
with contextlib.redirect_stdout(io.StringIO()) as out:  # the command's path too
  code = predict.main([f"--checkpoint={sys.argv[1]}", "--runtime=onnx", "--json", sys.argv[2]])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in
               ("jax", "jaxlib", "flax", "optax", "orbax", "tensorflow_datasets"))
print(json.dumps({"digit": result.digit, "probability": result.probability, "heavy": heavy,
                  "command": [code, json.loads(out.getvalue())[0]["digit"]]}))
"""


def test_onnx_runtime_serves_a_png_without_importing_jax(shipped, mnist_test, pngs):
  run = subprocess.run([sys.executable, "-c", SERVE_WITHOUT_JAX, str(SHIPPED), str(pngs[0])],
                       capture_output=True, text=True, timeout=120, cwd=REPO, check=True)
  answer = json.loads(run.stdout.strip().splitlines()[-1])
  assert answer["heavy"] == []
  assert answer["command"] == [0, answer["digit"]]
  # The same preprocessing and the same answer as the JAX predictor.
  want = shipped.predict([pngs[0]])[0]
  assert answer["digit"] == want.digit == mnist_test.labels[0]
  assert abs(answer["probability"] - want.probability) < 1e-5


def test_onnx_predictor_keeps_the_predictor_contract(shipped, mnist_test, tmp_path):
  served = jaxdigits.load(runtime="onnx")
  assert served.input_shape == shipped.input_shape == (28, 28, 1)
  assert served.config.to_dict() == shipped.config.to_dict()
  sources = [tmp_path / "missing.png", 255 - mnist_test.images[1, ..., 0],
             np.full((40, 30), 255, np.uint8)]  # no such file; a digit; blank paper
  got, want = served.predict(sources), shipped.predict(sources)
  assert [type(r).__name__ for r in got] == [type(r).__name__ for r in want] == [
      "ImageError", "Prediction", "ImageError"]
  assert [str(e) for e in (got[0], got[2])] == [str(e) for e in (want[0], want[2])]
  assert got[1].to_json()["digit"] == want[1].digit == mnist_test.labels[1]
  assert [d for d, _ in got[1].top3] == [d for d, _ in want[1].top3]
  with pytest.raises(ImageError, match=r"reads \[N, 28, 28, 1\]"):
    served.logits(np.zeros((1, 16, 16, 1), np.uint8))
  probs = served.probabilities(np.zeros((3, 28, 28, 1), np.uint8))
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-9)
  assert served.logits(np.zeros((0, 28, 28, 1), np.uint8)).shape == (0, 10)


def test_predict_cli_gives_the_same_digits_with_either_runtime(pngs, mnist_test, tmp_path,
                                                               capsys):
  files = [*map(str, pngs), str(tmp_path / "missing.png")]
  answers = {}
  for runtime in ("jax", "onnx"):
    assert predict_cli.main([f"--checkpoint={SHIPPED}", f"--runtime={runtime}", "--json",
                             *files]) == 1  # the missing file fails, the others answer
    out = capsys.readouterr()
    *answers[runtime], gone = json.loads(out.out)
    assert gone == {"file": files[-1], "error": f"{files[-1]}: no such file"}
    assert "missing.png: no such file" in out.err
  assert [a["digit"] for a in answers["onnx"]] == [a["digit"] for a in answers["jax"]] == list(
      mnist_test.labels[:3])
  for a, b in zip(answers["onnx"], answers["jax"]):
    assert abs(a["probability"] - b["probability"]) < 1e-5
  assert predict_cli.main(["--runtime=onnx", "--tta", files[0]]) == 2
  assert "--tta) has no ONNX form" in capsys.readouterr().err


def test_demo_serves_predict_with_the_onnx_runtime(pngs, mnist_test, tmp_path):
  gradio_client = pytest.importorskip("gradio_client")
  with running_demo("--runtime=onnx", log=tmp_path / "server.log") as url:
    client = gradio_client.Client(url, verbose=False)
    result = client.predict(gradio_client.handle_file(str(pngs[1])), api_name="/predict")
  assert result["label"] == str(mnist_test.labels[1]), result
  assert result["confidences"][0]["confidence"] > 0.9
