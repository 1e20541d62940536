"""Evaluation on a small trained model: metrics agree with sklearn, every output is written."""

from __future__ import annotations

import json
from pathlib import Path

import ml_collections
import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as skm

import jaxdigits
from jaxdigits import bundle, config as config_lib
from jaxdigits.analysis import evaluate
from jaxdigits.cli import evaluate as evaluate_cli
from jaxdigits.data import augment, load_tfds
from jaxdigits.inference import wrappers
from jaxdigits.models import forward
from jaxdigits.training import engine as train

OUTPUTS = ("metrics.json", "confusion_matrix.png", "confusion_matrix.txt", "misclassified.png",
           "reliability.png")


@pytest.fixture(scope="module")
def workdir(tiny_run):
  return tiny_run("mnist")


@pytest.fixture(scope="module")
def mnist_eval(workdir, raw_dir, tfds_dir, tmp_path_factory):
  """The tiny model evaluated on MNIST test, through the same function the CLI calls."""
  out = tmp_path_factory.mktemp("mnist_eval")
  metrics, folder = evaluate.evaluate_run(workdir, "mnist", "test", out_dir=out,
                                          raw_dir=str(raw_dir), data_dir=str(tfds_dir))
  assert folder == out
  return metrics, out


def test_metrics_equal_sklearn_on_the_same_predictions(workdir, mnist_eval, raw_dir, tfds_dir):
  metrics, out = mnist_eval
  assert json.loads((out / "metrics.json").read_text()) == metrics
  test = load_tfds("mnist", "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir))
  logits = jaxdigits.load(workdir).logits(test.images).astype(np.float64)
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  preds = probs.argmax(-1)
  report = skm.classification_report(test.labels, preds, output_dict=True, digits=6)

  assert metrics["examples"] == 10_000
  assert metrics["accuracy"] == pytest.approx(skm.accuracy_score(test.labels, preds), abs=1e-12)
  assert metrics["accuracy"] >= 0.9  # chance is 0.1: a trained model, not noise
  for digit in map(str, range(10)):
    for key in ("precision", "recall", "f1-score", "support"):
      ours = metrics["per_class"][digit]["f1" if key == "f1-score" else key]
      assert ours == pytest.approx(report[digit][key], abs=1e-9), (digit, key)
  for avg in ("macro", "weighted"):
    for key in ("precision", "recall"):
      assert metrics[avg][key] == pytest.approx(report[f"{avg} avg"][key], abs=1e-9)
    assert metrics[avg]["f1"] == pytest.approx(report[f"{avg} avg"]["f1-score"], abs=1e-9)
  assert metrics["log_loss"] == pytest.approx(skm.log_loss(test.labels, probs), rel=1e-6)
  np.testing.assert_array_equal(metrics["confusion_matrix"],
                                skm.confusion_matrix(test.labels, preds))
  assert metrics["errors"] == int((preds != test.labels).sum())


def test_writes_every_output(mnist_eval):
  metrics, out = mnist_eval
  for name in OUTPUTS:
    assert (out / name).stat().st_size > 0, name
  for name in OUTPUTS:
    if name.endswith(".png"):
      with Image.open(out / name) as im:
        assert im.format == "PNG" and min(im.size) >= 300, name
  rows = (out / "confusion_matrix.txt").read_text().splitlines()
  assert len(rows) == 11
  assert [int(v) for v in rows[1].split()[1:]] == metrics["confusion_matrix"][0]


def test_error_analysis_is_consistent(mnist_eval):
  metrics, _ = mnist_eval
  cm = np.array(metrics["confusion_matrix"])
  pairs = metrics["confused_pairs"]
  assert pairs, "a tiny model makes some mistakes"
  assert all(cm[p["true"], p["predicted"]] == p["count"] and p["true"] != p["predicted"]
             for p in pairs)
  assert [p["count"] for p in pairs] == sorted((p["count"] for p in pairs), reverse=True)
  off = cm - np.diag(np.diag(cm))
  assert pairs[0]["count"] == off.max()
  worst = metrics["worst_errors"]
  assert len(worst) == min(evaluate.GALLERY_SIZE, metrics["errors"])
  assert all(e["true"] != e["predicted"] and e["confidence"] > e["probability_of_true"]
             for e in worst)
  assert [e["confidence"] for e in worst] == sorted((e["confidence"] for e in worst), reverse=True)
  assert 0 <= metrics["expected_calibration_error"] < 0.1
  assert sum(b["count"] for b in metrics["reliability_bins"]) == 10_000


def test_expected_calibration_error_by_hand():
  # Two bins used: confidence 0.95 (2 of 2 right) and 0.6 (1 of 2 right).
  probs = np.array([[0.95, 0.05], [0.05, 0.95], [0.6, 0.4], [0.6, 0.4]])
  labels = np.array([0, 1, 0, 1])
  ece, bins = evaluate.reliability(probs, labels, num_bins=10)
  assert ece == pytest.approx(0.5 * abs(1.0 - 0.95) + 0.5 * abs(0.5 - 0.6))
  assert [(b["low"], b["count"], b["accuracy"]) for b in bins] == [
      (pytest.approx(0.5), 2, 0.5), (pytest.approx(0.9), 2, 1.0)]


def test_confused_pairs_order_and_share():
  cm = np.array([[5, 3, 0], [1, 5, 0], [0, 4, 5]])
  pairs = evaluate.confused_pairs(cm, top=5)
  assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [(2, 1, 4), (0, 1, 3),
                                                                      (1, 0, 1)]
  assert pairs[0]["share_of_errors"] == pytest.approx(0.5)


def test_padding_the_last_batch_does_not_change_logits(workdir, raw_dir, tfds_dir):
  predictor = jaxdigits.load(workdir)
  images = load_tfds("mnist", "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir),
                     stop=23).images
  whole = forward.batched_logits(predictor.module.apply, predictor.variables, images, 1000)
  chunked = forward.batched_logits(predictor.module.apply, predictor.variables, images, 10)
  np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-5)
  assert evaluate.accuracy(whole, np.argmax(whole, -1)) == 1.0


def test_cross_dataset_usps_on_mnist_model(workdir, raw_dir, tfds_dir, tmp_path):
  metrics, _ = evaluate.evaluate_run(workdir, "usps", "test", out_dir=tmp_path,
                                     raw_dir=str(raw_dir), data_dir=str(tfds_dir))
  assert metrics["cross_dataset"] and metrics["trained_on"] == "mnist"
  assert metrics["examples"] == 2007 and metrics["input_shape"] == [28, 28, 1]
  # Resized MNIST-style, USPS is readable by an MNIST model: far above chance.
  assert metrics["accuracy"] > 0.5


def test_cli_bad_workdir_is_one_line_error(tmp_path, capsys):
  assert evaluate_cli.main([f"--workdir={tmp_path / 'missing'}"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "missing" in err[0] and "workdir" in err[0]


def test_ensemble_averages_member_probabilities(workdir, tiny_run, raw_dir, tfds_dir, capsys,
                                                monkeypatch):
  runs = [workdir, tiny_run("usps")]  # both read 28x28 MNIST-style digits
  images = load_tfds("mnist", "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir),
                     stop=300).images
  ensemble = jaxdigits.load(runs)
  members = [jaxdigits.load(r).probabilities(images) for r in runs]
  assert not np.allclose(members[0], members[1], atol=1e-3)  # two different models
  np.testing.assert_allclose(np.exp(ensemble.logits(images)), np.mean(members, axis=0),
                             rtol=1e-5, atol=1e-7)
  monkeypatch.setenv("JAXDIGITS_RAW_DATA", str(raw_dir))
  # Several runs: repeated --workdir flags, or one comma-separated list.
  assert evaluate_cli.main([f"--workdir={runs[0]}", f"--workdir={runs[1]}", "--dataset=mnist",
                            f"--data_dir={tfds_dir}"]) == 0
  assert "ensemble of 2 models" in capsys.readouterr().out
  written = json.loads((workdir / "eval" / "ensemble2_mnist_test" / "metrics.json").read_text())
  assert written["runs"] == [str(r) for r in runs] and written["examples"] == 10_000


@pytest.mark.parametrize("name,fields", [("random_forest", {"n_estimators": 10}),
                                         ("knn", {"k": 3})])
def test_classic_runs_evaluate_through_the_same_interface(raw_dir, tfds_dir, tmp_path, name,
                                                          fields):
  config = config_lib.defaults()
  config.model = ml_collections.ConfigDict({"name": name, **fields})
  config.data.raw_dir, config.data.tfds_dir = str(raw_dir), str(tfds_dir)
  config.data.train_limit = 2000
  final = train.train_and_evaluate(config, tmp_path)
  metrics, out = evaluate.evaluate_run(tmp_path, raw_dir=str(raw_dir), data_dir=str(tfds_dir))
  assert metrics["accuracy"] == final["test_accuracy"] > 0.75
  assert (out / "confusion_matrix.png").is_file()
  images = load_tfds("mnist", "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir),
                     stop=50).images
  probs = np.exp(jaxdigits.load(tmp_path).logits(images))
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)  # vote shares / tree averages
  # Test-time augmentation wraps a classic model like any other predictor.
  views = ((0.0, 1.0, 0.0, 0.0), (0.0, 1.0, 1.0, 0.0))
  moved = np.exp(jaxdigits.load(tmp_path).logits(augment.tta_views(images, views)[1]))
  augmented = wrappers.Augmented(jaxdigits.load(tmp_path), views).probabilities(images)
  np.testing.assert_allclose(augmented, (probs + moved) / 2, rtol=1e-5, atol=1e-6)


def test_cli_tta_evaluates_into_a_folder_of_its_own(workdir, raw_dir, tfds_dir, capsys,
                                                     monkeypatch):
  monkeypatch.setenv("JAXDIGITS_RAW_DATA", str(raw_dir))
  args = ["--workdir", str(workdir), "--split=validation", f"--data_dir={tfds_dir}"]
  assert evaluate_cli.main(args) == evaluate_cli.main([*args, "--tta"]) == 0
  assert "test-time augmented" in capsys.readouterr().out
  plain, tta = (json.loads((workdir / "eval" / name / "metrics.json").read_text())
                for name in ("mnist_validation", "mnist_validation_tta"))
  assert (plain["tta"], tta["tta"]) == (False, True)
  assert tta["examples"] == plain["examples"] == 6000
  assert tta["log_loss"] != plain["log_loss"]  # other probabilities, not a copy
  assert tta["accuracy"] >= plain["accuracy"] - 0.01 and tta["accuracy"] > 0.9


def test_a_bundle_evaluates_without_writing_into_it(raw_dir, tfds_dir, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # a bundle's default output folder is eval/<bundle name>/
  metrics, out = evaluate.evaluate_run(bundle.PRETRAINED, split="validation",
                                       raw_dir=str(raw_dir), data_dir=str(tfds_dir))
  assert out == Path("eval") / bundle.PRETRAINED.name / "mnist_validation"
  assert (out / "metrics.json").is_file() and metrics["examples"] == 6000
  assert metrics["accuracy"] > 0.99  # the shipped CNN, on digits it never trained on
  assert metrics["runs"] == [str(bundle.PRETRAINED)]
  bundle.verify(bundle.PRETRAINED)  # nothing was added to the bundle


def test_cli_evaluates_a_classic_run_and_an_ensemble_with_it(workdir, tiny_knn_run, raw_dir,
                                                             tfds_dir, capsys, monkeypatch):
  monkeypatch.setenv("JAXDIGITS_RAW_DATA", str(raw_dir))
  knn = tiny_knn_run("mnist")
  assert evaluate_cli.main([f"--workdir={knn}", f"--data_dir={tfds_dir}"]) == 0
  alone = json.loads((knn / "eval" / "mnist_test" / "metrics.json").read_text())
  final = json.loads((knn / "metrics.jsonl").read_text().splitlines()[-1])
  assert alone["accuracy"] == final["test_accuracy"] > 0.85
  assert evaluate_cli.main([f"--workdir={knn},{workdir}", "--split=validation",
                            f"--data_dir={tfds_dir}"]) == 0
  assert "ensemble of 2 models" in capsys.readouterr().out
  both = json.loads((knn / "eval" / "ensemble2_mnist_validation" / "metrics.json").read_text())
  assert both["runs"] == [str(knn), str(workdir)] and both["examples"] == 6000
