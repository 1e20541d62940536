"""Workdir checkpoints are checked before use: damage is named, refused when serving, passed
over when resuming; old checkpoints without checksums still load; NaN answers are refused."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import jaxdigits
import synthetic
from jaxdigits import checkpoints, config as config_lib, manifest, records
from jaxdigits.cli import predict as predict_cli
from jaxdigits.errors import CheckpointError, JaxdigitsError
from jaxdigits.inference.contract import Predictor


@pytest.fixture
def run(tiny_run, tmp_path) -> Path:
  """A copy of the tiny run (best step 3, with checksums), free to damage."""
  return Path(shutil.copytree(tiny_run("mnist"), tmp_path / "run"))


def _array_files(step_dir: Path) -> list[Path]:
  """The step's array files, largest first (the params and the optimizer moments)."""
  return sorted((p for p in (step_dir / "state").rglob("d/*") if p.is_file()),
                key=lambda p: -p.stat().st_size)


def _flip(file: Path, n: int = 65536) -> None:
  data = bytearray(file.read_bytes())
  start = len(data) // 4
  end = min(start + n, len(data))
  data[start:end] = bytes(b ^ 0xFF for b in data[start:end])
  file.write_bytes(bytes(data))


def _digests(folder: Path) -> dict[str, str]:
  return {name: manifest.sha256(folder / name) for name in manifest.files_under(folder)}


def test_a_flipped_or_truncated_best_step_is_refused_in_one_line(run, capsys):
  step = run / "checkpoints" / "3"
  assert (step / checkpoints.CHECKSUMS).is_file()
  flipped = _array_files(step)[:2]
  for f in flipped:
    _flip(f)  # same size: only the sha256 can tell
  before = _digests(run)
  with pytest.raises(CheckpointError, match=r"checkpoint step 3 is damaged: .*does not match "
                     r"its sha256.*best checkpoint on validation") as e:
    jaxdigits.load(run)
  assert any(str(f) in str(e.value) for f in flipped)
  assert predict_cli.main([f"--checkpoint={run}", "x.png"]) == 2
  out, err = capsys.readouterr()
  assert out == "" and len(err.strip().splitlines()) == 1 and "checkpoint step 3" in err
  assert _digests(run) == before  # a refusal writes nothing

  for f in flipped:
    _flip(f)  # flipped back: the step is whole again, then cut short
  jaxdigits.load(run)
  biggest = _array_files(step)[0]
  biggest.write_bytes(biggest.read_bytes()[:1000])
  with pytest.raises(CheckpointError, match=rf"{biggest} is 1000 bytes, .* says \d+ "
                                            r"\(truncated or altered\)"):
    jaxdigits.load(run / "checkpoints")


def test_checkpoints_without_checksums_load_unverified_and_fail_in_one_line(run, tiny_run):
  """Runs saved before checksums existed: they load as before, and damage Orbax or the
  JSON parser finds is one line naming the file."""
  step = run / "checkpoints" / "3"
  (step / checkpoints.CHECKSUMS).unlink()
  ckpts = checkpoints.Checkpoints(run / "checkpoints")
  assert ckpts.verify(3) is False
  ckpts.close()
  digits = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
  np.testing.assert_array_equal(jaxdigits.load(run).logits(digits),
                                jaxdigits.load(tiny_run("mnist")).logits(digits))

  config_file = step / checkpoints.CONFIG_FILE
  original = config_file.read_text()
  saved = json.loads(original)
  saved["model"]["dense"] = 48
  config_file.write_text(json.dumps(saved))
  with pytest.raises(CheckpointError, match=r"Dense_0\.\w+ is saved with shape \([0-9, ]*32,?\).*"
                     r"model.dense: checkpoint has 48, config has 32"):
    jaxdigits.load(run)
  config_file.write_text(original)

  metrics = step / checkpoints.METRICS_FILE
  metrics.write_text("{val_accuracy: 0.9")
  with pytest.raises(CheckpointError, match=rf"{metrics} is not a JSON object"):
    jaxdigits.load(run)


def test_resume_sets_a_truncated_latest_step_aside_and_falls_back(tmp_path, monkeypatch,
                                                                  capsys):
  """As a damaged disk, or a kill -9 during epoch 3's save, leaves a run: the latest step
  unusable, epoch 3's record already written. The resume goes on from the newest good step
  (epoch 2), and epoch 3 is in metrics.jsonl once. On generated splits: a few seconds."""
  from jaxdigits.data import pipeline  # pylint: disable=g-import-not-at-top
  from jaxdigits.training import engine  # pylint: disable=g-import-not-at-top
  train, val, test = (synthetic.strokes(n, seed) for n, seed in [(512, 1), (256, 2), (256, 3)])
  splits = pipeline.Splits(*(pipeline.Split(*s) for s in (train, val, test)))
  monkeypatch.setattr(pipeline, "load_splits", lambda data: splits)
  config = config_lib.defaults()
  config.model = ml_collections.ConfigDict({"name": "cnn", "features": (4,), "dense": 0})
  config.train.update(num_epochs=3, batch_size=64)
  config.checkpoint.keep, config.progress_bar = 3, False
  run = tmp_path / "run"
  engine.train_and_evaluate(config, run, evaluate_test=False)
  ckpt_dir = run / "checkpoints"
  biggest = _array_files(ckpt_dir / "3")[0]
  biggest.write_bytes(biggest.read_bytes()[:biggest.stat().st_size // 2])
  capsys.readouterr()
  engine.train_and_evaluate(config, run, evaluate_test=False)
  err = capsys.readouterr().err
  notice = [l for l in err.splitlines() if "is damaged" in l]
  assert len(notice) == 1 and str(biggest) in notice[0], err
  assert "set it aside as" in notice[0] and "resuming from the checkpoint of epoch 2" in notice[0]
  assert "epoch 3/3" in err and "epoch 2/3" not in err  # only epoch 3 was trained again
  assert (ckpt_dir / "3.damaged").is_dir()
  lines = [json.loads(l) for l in records.path(run).read_text().splitlines()]
  assert [r["epoch"] for r in lines if "epoch" in r] == [1, 2, 3]
  assert sum(records.is_final(r) for r in lines) == 1  # the first run's final went too
  ckpts = checkpoints.Checkpoints(ckpt_dir)
  assert ckpts.verify(3) and ckpts.verify(2)  # the new step 3 has its checksums
  ckpts.close()


def test_a_resume_skips_every_damaged_step_and_saves_over_the_latest(tmp_path):
  config = config_lib.defaults()
  config.model.name, config.checkpoint.keep = "cnn", 3
  ckpts = checkpoints.Checkpoints(tmp_path, config)
  for step in (1, 2, 3):
    ckpts.save(step, {"w": jnp.full(1000, float(step))}, {"val_accuracy": step / 10})
  ckpts.close()
  assert all(checkpoints.verify_step(s, tmp_path / str(s)) for s in (1, 2, 3))
  (tmp_path / "3" / checkpoints.METRICS_FILE).write_text('{"val_accuracy": 0.99}')  # edited
  for f in _array_files(tmp_path / "1"):
    f.unlink()
  reopened = checkpoints.Checkpoints(tmp_path, config)
  assert [(e.step, moved.name) for e, moved in reopened.set_aside] == [(1, "1.damaged"),
                                                                       (3, "3.damaged")]
  assert "missing" in reopened.set_aside[0][0].reason
  assert "3/metrics/metrics is 22 bytes" in reopened.set_aside[1][0].reason
  assert reopened.latest_step() == reopened.best_step() == 2
  reopened.save(3, {"w": jnp.full(1000, 30.0)}, {"val_accuracy": 0.5})
  reopened.wait()
  np.testing.assert_array_equal(reopened.restore(3, {"w": jnp.zeros(1000)})["w"], 30.0)
  reopened.close()
  assert checkpoints.verify_step(3, tmp_path / "3")


@dataclasses.dataclass(frozen=True)
class _Fixed(Predictor):
  config: object
  answer: np.ndarray

  def _logits(self, images):
    return np.broadcast_to(self.answer, (len(images), 10))


def test_non_finite_answers_are_refused_as_a_damaged_model(tiny_run):
  config = config_lib.defaults()
  images = np.zeros((3, 28, 28, 1), np.uint8)
  for bad in (np.nan, np.inf, -np.inf):
    predictor = _Fixed(config, np.r_[np.zeros(9), bad])
    with pytest.raises(JaxdigitsError, match="the model is damaged: it gave NaN or infinite "
                                             "logits for 3 of 3 images"):
      predictor.probabilities(images)
  np.testing.assert_allclose(_Fixed(config, np.zeros(10)).probabilities(images), 0.1)

  stroke = np.zeros((28, 28), np.uint8)
  stroke[4:24, 12:16] = 255  # a "1", so that preprocessing finds ink and the model is asked
  flax_model = jaxdigits.load(tiny_run("mnist"))
  poisoned = dataclasses.replace(flax_model, variables=jax.tree.map(
      lambda v: jnp.full_like(v, jnp.nan), flax_model.variables))
  with pytest.raises(CheckpointError, match="the model is damaged"):
    poisoned.predict([stroke])
