"""Not a digit: the generator of non-digits, the shipped detector, predict's answer, the bundle."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw

import jaxdigits
from jaxdigits import bundle
from jaxdigits.cli import predict as predict_cli
from jaxdigits.data import load_tfds, nondigits
from jaxdigits.errors import BundleError
from jaxdigits.inference import ood
from jaxdigits.inference.contract import Ensemble
from jaxdigits.models import nondigit


@pytest.fixture(scope="module")
def shipped():
  return jaxdigits.load()


def test_generator_is_deterministic_per_seed_and_split():
  a, fa = nondigits.generate(24, 3)
  b, fb = nondigits.generate(24, 3)
  assert a.shape == (24, 28, 28, 1) and a.dtype == np.uint8
  assert np.array_equal(a, b) and np.array_equal(fa, fb)
  assert not np.array_equal(a, nondigits.generate(24, 4)[0])
  assert not np.array_equal(a, nondigits.generate(24, 3, "heldout")[0])
  assert sorted(np.bincount(fa)) == [6, 6, 6, 6]  # families in turn
  assert (a.reshape(24, -1).max(1) > 100).all()  # every image has ink


def test_generator_never_draws_a_glyph_read_as_a_digit():
  assert set("0123456789OoDQlIiZzSsbGqgB|") <= set(nondigits.EXCLUDED)
  assert not set(nondigits.GLYPHS) & set(nondigits.EXCLUDED)
  assert not set(nondigits.FALLBACK) & set(nondigits.EXCLUDED)
  rng = np.random.default_rng(0)
  drawn = {c for _ in range(2000) for c in nondigits.sample_text(rng)}
  assert drawn <= set(nondigits.GLYPHS) and len(drawn) > 50


def test_heldout_letters_use_other_fonts():
  train, heldout = nondigits.font_files("train"), nondigits.font_files("heldout")
  assert train and heldout and not {p.name for p in train} & {p.name for p in heldout}
  assert nondigits.font_files("validation") == train


def test_shipped_detector_keeps_digits_and_refuses_heldout_nondigits(shipped, raw_dir,
                                                                    tfds_dir):
  digits = load_tfds("mnist", "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir),
                     stop=2000).images
  refused = [r is not None for r in shipped.not_digit(digits)]
  assert np.mean(refused) <= 0.01, np.mean(refused)
  others, _ = nondigits.generate(400, 7, "heldout")
  reasons = shipped.not_digit(others)
  assert np.mean([r is not None for r in reasons]) >= 0.90
  assert next(r for r in reasons if r).startswith("does not look like a digit (score ")


def _scribble(path):
  im = Image.new("L", (240, 200), 255)
  rng = np.random.default_rng(5)
  ImageDraw.Draw(im).line([tuple(p) for p in rng.uniform(10, 190, (14, 2))], fill=0, width=9)
  im.save(path)


def test_predict_json_refuses_a_scribble_and_reads_a_digit(tmp_path, capsys, raw_dir,
                                                          tfds_dir):
  _scribble(tmp_path / "scribble.png")
  digit = load_tfds("mnist", "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir), stop=1)
  Image.fromarray(255 - digit.images[0, ..., 0]).resize((112, 112)).save(tmp_path / "d.png")
  files = [str(tmp_path / "scribble.png"), str(tmp_path / "d.png")]
  assert predict_cli.main(["--json", *files]) == 0
  rows = json.loads(capsys.readouterr().out)
  assert [r["file"] for r in rows] == files
  assert rows[0]["digit"] is None and "does not look like a digit" in rows[0]["reason"]
  assert rows[1]["digit"] == int(digit.labels[0]) and "reason" not in rows[1]
  assert predict_cli.main(files) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].startswith(f"{files[0]}: not a digit: does not look like a digit")
  assert lines[1].startswith(f"{files[1]}: {int(digit.labels[0])} (p=")


def test_models_without_a_detector_answer_none_and_wrappers_pass_it_on(shipped):
  x = nondigits.generate(3, 0)[0]
  onnx = jaxdigits.load(runtime="onnx")
  assert onnx.detector is None and onnx.not_digit(x) == [None] * 3
  assert Ensemble((shipped, onnx)).not_digit(x) == shipped.not_digit(x)
  assert jaxdigits.load(tta=True).detector.threshold == shipped.detector.threshold
  [kept] = shipped.predict([x[0, ..., 0]], reject=False)
  assert kept.digit is not None and kept.reason is None


def test_bundle_lists_the_detector_and_refuses_a_flipped_byte(tmp_path):
  listed = bundle.verify(bundle.PRETRAINED)["files"]
  for name in (nondigit.PARAMS, nondigit.META):
    assert f"{nondigit.FOLDER}/{name}" in listed
  card = json.loads((bundle.PRETRAINED / bundle.CARD).read_text())
  assert card["not_digit"]["threshold"] == ood.load_beside(bundle.PRETRAINED).threshold
  copy = tmp_path / "b"
  shutil.copytree(bundle.PRETRAINED, copy)
  params = copy / nondigit.FOLDER / nondigit.PARAMS
  data = bytearray(params.read_bytes())
  data[len(data) // 2] ^= 1
  params.write_bytes(bytes(data))
  with pytest.raises(BundleError, match="does not match its sha256"):
    jaxdigits.load(copy)


def test_add_detector_copies_every_other_file_byte_for_byte(tmp_path):
  source = tmp_path / "plain"
  shutil.copytree(bundle.PRETRAINED, source)
  shutil.rmtree(source / nondigit.FOLDER)
  (source / bundle.MANIFEST).unlink()
  bundle.manifest_lib.write(source)
  assert jaxdigits.load(source).detector is None
  out = tmp_path / "with"
  new = bundle.add_detector(source, bundle.PRETRAINED / nondigit.FOLDER, out)["files"]
  old = bundle.verify(source)["files"]
  assert {k: v for k, v in new.items() if not k.startswith(nondigit.FOLDER)
          and k != bundle.CARD} == {k: v for k, v in old.items() if k != bundle.CARD}
  assert jaxdigits.load(out).detector is not None
  with pytest.raises(BundleError, match="already exists"):
    bundle.add_detector(source, bundle.PRETRAINED / nondigit.FOLDER, out)


@pytest.mark.slow
def test_ood_command_fits_a_run_and_export_carries_it(tiny_knn_run, tmp_path, capsys):
  # A kNN run: any model can carry a detector, and its export (no ONNX form) is quick.
  from jaxdigits.cli import ood as ood_cli  # pylint: disable=g-import-not-at-top
  run = tmp_path / "run"
  shutil.copytree(tiny_knn_run("mnist"), run)  # the shared run stays without a detector
  assert ood_cli.main([f"--workdir={run}", "--steps=20", "--nondigits=200", "--redrawn=50",
                       "--train_limit=500", "--features=4,8,8"]) == 0
  assert "validation digits rejected" in capsys.readouterr().out
  meta = json.loads((run / nondigit.FOLDER / nondigit.META).read_text())
  assert meta["features"] == [4, 8, 8] and meta["trained_on"]["nondigits"] == 200
  assert jaxdigits.load(run).detector.threshold == meta["threshold"]
  manifest = bundle.export(run, tmp_path / "b")
  assert f"{nondigit.FOLDER}/{nondigit.PARAMS}" in manifest["files"]
  assert jaxdigits.load(tmp_path / "b").detector.threshold == meta["threshold"]
  assert ood_cli.main([f"--workdir={tmp_path / 'b'}"]) == 2  # a bundle takes --bundle/--out
