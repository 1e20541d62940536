"""Training end to end: learning, determinism, kill-and-resume, refusing a foreign or busy
workdir (Flax and classic alike), and what the command prints."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import ml_collections
import numpy as np
import pytest

from conftest import REPO, TINY, saved_state, tiny_config
from jaxdigits import checkpoints, config as config_lib
from jaxdigits.training import engine as train
from jaxdigits.checkpoints import CheckpointError


def cli_args(workdir, **changes):
  overrides = [f"--config.{k}={v}" for k, v in {**TINY, **changes}.items()]
  return [sys.executable, "-m", "jaxdigits.main", "--config=configs/cnn.py",
          f"--workdir={workdir}", *overrides, "--config.model.dropout=0.0",
          "--config.train.max_shift=0"]


def assert_trees_equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def reference(raw_dir, tfds_dir, tmp_path_factory):
  """One uninterrupted tiny run, as the CLI's config would make it (no dropout, no shift)."""
  workdir = tmp_path_factory.mktemp("reference")
  config = tiny_config(raw_dir, tfds_dir, **{"model.dropout": 0.0, "train.max_shift": 0})
  final = train.train_and_evaluate(config, workdir)
  return workdir, config, final


@pytest.mark.slow
def test_fast_config_passes_99_percent(raw_dir, tfds_dir, tmp_path):
  """configs/fast.py as benchmarks/time_to_99.py runs it (measured on the 2-core CPU: 99.13 to
  99.26% test over seeds 0-4). How fast it is belongs to the benchmark; here, what
  train_seconds counts."""
  config = config_lib.load_file(REPO / "configs" / "fast.py")
  config.data.raw_dir, config.data.tfds_dir = str(raw_dir), str(tfds_dir)
  config.progress_bar = False
  start = time.perf_counter()
  final = train.train_and_evaluate(config, tmp_path)
  wall = time.perf_counter() - start
  assert final["test_accuracy"] >= 0.988, final
  epochs = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()][:-1]
  steps = sum(r["epoch_seconds"] for r in epochs)
  # train_seconds = set-up + compilation + the epochs' steps; never data loading or evaluation.
  assert 0 < final["compile_seconds"] and steps + final["compile_seconds"] <= final["train_seconds"]
  assert final["train_seconds"] < wall, (final, wall)


def test_short_run_learns_and_writes_metrics(reference):
  workdir, _, final = reference
  assert final["test_accuracy"] >= 0.90, final  # chance is 0.10
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  epochs = [r for r in records if "epoch" in r]
  assert [r["epoch"] for r in epochs] == [1, 2, 3]
  assert all(0 <= r["val_accuracy"] <= 1 and r["train_loss"] > 0 for r in epochs)
  assert records[-1]["test_accuracy"] == final["test_accuracy"]
  assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  # keep=1: the latest checkpoint and the best on validation, nothing else.
  kept = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  best = max(epochs, key=lambda r: (r["val_accuracy"], r["epoch"]))["epoch"]
  assert kept == sorted({3, best})
  assert final["best_epoch"] == best


def test_same_seed_gives_bit_identical_parameters(reference, tmp_path):
  workdir, config, _ = reference
  train.train_and_evaluate(config, tmp_path / "again")
  assert_trees_equal(saved_state(workdir, config), saved_state(tmp_path / "again", config))


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(reference, data_env, tmp_path):
  ref_dir, config, ref_final = reference
  workdir = tmp_path / "killed"
  proc = subprocess.Popen(cli_args(workdir), cwd=REPO, env=data_env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, start_new_session=True)
  try:
    deadline = time.time() + 300
    while not (workdir / "checkpoints" / "1").is_dir():
      assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
      assert time.time() < deadline, "no checkpoint after 300 s"
      time.sleep(0.01)
  finally:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
  # Killed during epoch 2: its checkpoint and its metrics line never happened.
  assert not (workdir / "checkpoints" / "2").exists()
  resumed = subprocess.run(cli_args(workdir), cwd=REPO, env=data_env, capture_output=True,
                           timeout=600)
  assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
  assert_trees_equal(saved_state(ref_dir, config), saved_state(workdir, config))
  last = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
  assert last["test_accuracy"] == ref_final["test_accuracy"]


def file_digests(root) -> dict[str, tuple[str, int]]:
  """Every file under ``root``: its sha256 and modification time."""
  return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                     p.stat().st_mtime_ns)
          for p in sorted(root.rglob("*")) if p.is_file()}


def knn_config(raw_dir, tfds_dir, k: int = 3):
  config = config_lib.defaults()
  config.model = ml_collections.ConfigDict({"name": "knn", "k": k})
  config.data.raw_dir, config.data.tfds_dir = str(raw_dir), str(tfds_dir)
  config.data.train_limit, config.progress_bar = 2000, False
  return config


def test_workdir_of_another_config_is_refused_untouched(reference, raw_dir, tfds_dir):
  workdir, config, _ = reference
  before = file_digests(workdir)
  other = tiny_config(raw_dir, tfds_dir, **{"model.dense": 64})
  with pytest.raises(CheckpointError, match=r"model\.dense: checkpoint has 32, config has 64"):
    train.train_and_evaluate(other, workdir)
  with pytest.raises(CheckpointError, match=r"holds a cnn run, not knn .*model\.name"):
    train.train_and_evaluate(knn_config(raw_dir, tfds_dir), workdir)
  assert file_digests(workdir) == before
  assert not (workdir / "classic").exists()


def test_classic_workdir_refuses_a_flax_run_and_a_changed_field(raw_dir, tfds_dir, tmp_path):
  fitted = train.train_and_evaluate(knn_config(raw_dir, tfds_dir), tmp_path)
  assert fitted["kind"] == "classic" and fitted["best_epoch"] is None
  before = file_digests(tmp_path)
  with pytest.raises(CheckpointError, match=r"holds a knn run, not cnn"):
    train.train_and_evaluate(tiny_config(raw_dir, tfds_dir), tmp_path)
  with pytest.raises(CheckpointError, match=r"model\.k: checkpoint has 3, config has 5"):
    train.train_and_evaluate(knn_config(raw_dir, tfds_dir, k=5), tmp_path)
  assert file_digests(tmp_path) == before
  assert not (tmp_path / "checkpoints").exists()
  again = train.train_and_evaluate(knn_config(raw_dir, tfds_dir), tmp_path)  # same config: reused
  assert again == fitted


def test_a_second_run_on_a_busy_workdir_stops_at_once_and_the_first_reads_well(data_env,
                                                                              tmp_path):
  workdir = tmp_path / "busy"
  first = subprocess.Popen(cli_args(workdir), cwd=REPO, env=data_env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
  try:
    deadline = time.time() + 300
    while not (workdir / "checkpoints" / "1").is_dir():  # mid-run, holding the lock
      assert first.poll() is None, first.stderr.read()[-3000:]
      assert time.time() < deadline, "no checkpoint after 300 s"
      time.sleep(0.05)
    os.killpg(first.pid, signal.SIGSTOP)  # so that it is surely still running
    start = time.time()
    second = subprocess.run(cli_args(workdir), cwd=REPO, env=data_env, capture_output=True,
                            text=True, timeout=300)
    refused_after = time.time() - start
    os.killpg(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=600)
  finally:
    if first.poll() is None:
      os.killpg(first.pid, signal.SIGKILL)
  assert second.returncode == 2, second.stderr[-3000:]
  assert f"in use by another run (process {first.pid}" in second.stderr
  assert refused_after < 120  # the time to start Python and JAX, not to wait for the lock
  assert first.returncode == 0, err[-3000:]
  lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r.get("epoch") for r in lines] == [1, 2, 3, None]  # each epoch once, one final
  # What a newcomer reads: an epoch line each, a summary with the next commands, no noise.
  for epoch in (1, 2, 3):
    assert re.search(rf"^epoch {epoch}/3  loss \d\.\d{{4}}  train \d+\.\d\d%  "
                     rf"val \d+\.\d\d%  \d+\.\d s$", err, re.M), err
  final = lines[-1]
  assert f"test accuracy  {final['test_accuracy']:.2%}" in out
  assert f"best epoch {final['best_epoch']}" in out and str(workdir / "checkpoints") in out
  for command in (f"python -m jaxdigits.evaluate --workdir={workdir}",
                  f"python -m jaxdigits.demo --checkpoint={workdir}",
                  f"python -m jaxdigits.export --workdir={workdir} --out={workdir}_bundle"):
    assert command in out, out
  assert "OpenCV" not in err + out and not re.search(r"^(I\d{4}|INFO)", err, re.M), err
  assert "Traceback" not in err


def test_cli_reports_bad_config_in_one_line(data_env, tmp_path):
  result = subprocess.run(cli_args(tmp_path / "w", **{"train.batch_size": 0}), cwd=REPO,
                          env=data_env, capture_output=True, timeout=300)
  assert result.returncode == 2
  assert "train.batch_size: must be a positive integer" in result.stderr.decode()
  assert "Traceback" not in result.stderr.decode()


def test_load_for_inference_gives_the_reported_test_accuracy(reference, raw_dir, tfds_dir):
  from jaxdigits.analysis import evaluate
  from jaxdigits.inference import predictor as predict, restore
  from jaxdigits.data import pipeline
  workdir, config, final = reference
  loaded_config, model, variables = restore.read_run(workdir)
  assert set(variables) == {"params", "batch_stats"}  # no optimizer state, no step
  assert loaded_config.model.to_dict() == {**config.model.to_dict(), "features": [8, 16]}
  test = pipeline.load_tfds("mnist", "test", raw_dir=str(raw_dir), data_dir=str(tfds_dir))
  logits = predict.batched_logits(model.apply, variables, test.images)
  assert evaluate.accuracy(logits, test.labels) == final["test_accuracy"]


def test_load_for_inference_refuses_a_folder_without_checkpoints(tmp_path):
  from jaxdigits.inference import restore
  with pytest.raises(CheckpointError, match="no checkpoints at"):
    restore.read_run(tmp_path / "nothing")
