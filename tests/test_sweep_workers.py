"""Several sweep workers on one study: shared trials, none run twice, a killed worker's trial
failed and retried (resuming its checkpoints) by another."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time

import optuna
import pytest

from conftest import REPO

# A tiny CNN; dropout is no vmapped field, so each worker asks and trains one trial at a time.
TINY = ["--config=configs/cnn.py", "--config.data.train_limit=1024",
        "--config.model.features=(8,16)", "--config.model.dense=32",
        "--config.train.batch_size=64", "--config.progress_bar=False"]
# Seconds before a worker is killed (JAX children ignore SIGTERM when hung): a bound, not a
# target; on an idle 2-core box each test takes ~30 s, on one shared by ~20 jobs ~10 min.
TIMEOUT = 1200


@pytest.fixture(name="data_env")
def prepared_data_env(data_env, raw_dir, tfds_dir):
  """The session's data, prepared before the workers start (not by both at once)."""
  from conftest import tiny_config  # pylint: disable=g-import-not-at-top
  from jaxdigits.data import pipeline  # pylint: disable=g-import-not-at-top
  pipeline.load_splits(tiny_config(raw_dir, tfds_dir).data)
  return data_env


def _sweep_file(tmp_path, num_trials):
  path = tmp_path / "random.py"
  path.write_text("def get_sweep():\n  return " + repr(
      {"method": "random", "num_trials": num_trials, "seed": 0, "parameters": {
          "model.dropout": {"distribution": "uniform", "min": 0.0, "max": 0.3}}}) + "\n")
  return path


def _worker(tmp_path, num_trials, epochs, env):
  args = [sys.executable, "-m", "jaxdigits.sweep", *TINY, f"--config.train.num_epochs={epochs}",
          f"--sweep={_sweep_file(tmp_path, num_trials)}", f"--workdir={tmp_path / 'run'}"]
  return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def _finish(proc):
  try:
    out, err = proc.communicate(timeout=TIMEOUT)
  except subprocess.TimeoutExpired:
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate()
  return proc.returncode, out, err


def _study(workdir):
  storage = optuna.storages.JournalStorage(
      optuna.storages.journal.JournalFileBackend(str(workdir / "study.journal")))
  return optuna.load_study(study_name="jaxdigits", storage=storage)


def _results(workdir):
  with open(workdir / "results.csv") as f:
    return list(csv.DictReader(f))


def _epochs_written(trial_dir):
  lines = (trial_dir / "metrics.jsonl").read_text().splitlines()
  return [r["epoch"] for r in map(json.loads, lines) if "epoch" in r]


@pytest.mark.slow
def test_two_workers_share_one_study_and_no_trial_runs_twice(tmp_path, data_env):
  procs = [_worker(tmp_path, 6, 1, data_env) for _ in range(2)]
  ends = [_finish(p) for p in procs]
  for rc, _, err in ends:
    assert rc == 0, err[-3000:]
  rows = _results(tmp_path / "run")
  assert sorted(r["trial"] for r in rows) == [f"trial_{i:03d}" for i in range(6)]
  assert all(r["state"] == "complete" for r in rows), rows
  trials = _study(tmp_path / "run").trials
  assert len(trials) == 6 and all(t.state.name == "COMPLETE" for t in trials)
  assert len({t.params["model.dropout"] for t in trials}) == 6  # workers drew apart
  for r in rows:  # each trained once: one epoch record
    assert _epochs_written(tmp_path / "run" / r["trial"]) == [1], r
  print("trials per worker:", sorted(
      [t.user_attrs["worker"] for t in trials].count(w)
      for w in {t.user_attrs["worker"] for t in trials}))


@pytest.mark.slow
def test_a_killed_worker_leaves_the_study_completable(tmp_path, data_env):
  first = _worker(tmp_path, 3, 3, data_env)
  checkpoint = tmp_path / "run" / "trial_000" / "checkpoints" / "1"
  deadline = time.monotonic() + TIMEOUT
  while not checkpoint.is_dir() and first.poll() is None and time.monotonic() < deadline:
    time.sleep(0.05)
  first.send_signal(signal.SIGKILL)  # mid-trial: epoch 1 saved, epochs 2-3 to go
  first.communicate()
  assert checkpoint.is_dir(), "the first worker never reached its first checkpoint"
  rc, out, err = _finish(_worker(tmp_path, 3, 3, data_env))
  assert rc == 0, err[-3000:]
  assert "trial_000's worker died" in err
  rows = _results(tmp_path / "run")
  # Trial 1 is trial 0's retry, in trial 0's folder; folders are named after first numbers.
  assert [(r["trial"], r["number"], r["state"]) for r in rows] == [
      ("trial_000", "1", "complete"), ("trial_002", "2", "complete"),
      ("trial_003", "3", "complete")], rows
  trials = _study(tmp_path / "run").trials
  failed = [t for t in trials if t.state.name == "FAIL"]
  assert [(t.user_attrs["dir"], t.user_attrs["retried"]) for t in failed] == [("trial_000", True)]
  retry = next(t for t in trials if t.user_attrs.get("retry_of") == failed[0].number)
  assert retry.state.name == "COMPLETE" and retry.params == failed[0].params
  assert rows[0]["number"] == str(retry.number)
  # Resumed from its checkpoint, not restarted: epoch 1 trained (and written) once.
  assert _epochs_written(tmp_path / "run" / "trial_000").count(1) == 1
  assert "<- best on validation" in out


def _claim(study, search, workdir, size=1):
  from jaxdigits.sweeps import space, workers  # pylint: disable=g-import-not-at-top
  from parallel_worker import small_config  # pylint: disable=g-import-not-at-top
  distributions = space.search_space(search, small_config("single", 1))
  return workers.claim(study, search, distributions, search["num_trials"], size, workdir)


def test_a_trial_whose_lock_is_free_is_failed_and_retried_in_its_folder(tmp_path):
  from jaxdigits.errors import SweepError  # pylint: disable=g-import-not-at-top
  from jaxdigits.sweeps import space, workers  # pylint: disable=g-import-not-at-top
  search = {"method": "tpe", "num_trials": 2, "seed": 0, "parameters": {
      "model.dropout": {"distribution": "uniform", "min": 0.0, "max": 0.3}}}
  study = space.open_study(str(tmp_path), search, num_epochs=1)
  workers.prepare(study, search, None)
  (alive,), _ = _claim(study, search, tmp_path)
  (dead,), _ = _claim(study, search, tmp_path)
  assert _claim(study, search, tmp_path) == ([], [])  # both requested trials are taken
  dead.release()  # as its process's death would
  retried, found = _claim(study, search, tmp_path, size=5)
  assert found == ["trial_001"] and len(retried) == 1  # the live one is left alone
  assert retried[0].dir == dead.dir and retried[0].trial.params == dead.trial.params
  assert retried[0].trial.user_attrs["retry_of"] == dead.trial.number
  assert study.trials[dead.trial.number].state.name == "FAIL"
  assert study.trials[alive.trial.number].state.name == "RUNNING"
  with pytest.raises(SweepError, match="made by another sweep"):
    workers.prepare(study, {**search, "seed": 1}, None)
  workers.prepare(study, {**search, "num_trials": 5}, None)  # extending a study is fine
