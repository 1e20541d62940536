"""Sweeps: expansion and refusals, vmapped trials equal to lone runs, selection on validation."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import jax
import numpy as np
import optuna
import pytest
from PIL import Image

from conftest import REPO, saved_state
from jaxdigits import records
from jaxdigits.data import pipeline
from jaxdigits.errors import SweepError
from jaxdigits.sweeps import runner as sweep, space, spec, workers
from jaxdigits.training import engine as train
from jaxdigits.training.metrics_writer import MetricsWriter
from parallel_worker import small_config

GRID = {"method": "grid", "parameters": {"train.learning_rate": [1e-3, 3e-3],
                                         "train.weight_decay": [0.0, 1e-3, 1e-2]}}


def test_grid_expands_to_the_product():
  trials = spec.expand(GRID)
  assert len(trials) == 6 and trials[0] == {"train.learning_rate": 1e-3, "train.weight_decay": 0.0}


def _asked(search, base, workdir):
  """The parameters of every trial a study asks for ``search``, through the runner's ask step."""
  distributions, _ = sweep.check(base, search)
  workdir.mkdir()
  study = space.open_study(str(workdir), search, num_epochs=1)
  claims, _ = workers.claim(study, search, distributions, search["num_trials"], 100, workdir)
  for c in claims:
    c.release()
  return [c.trial.params for c in claims]


def test_random_search_is_seeded_and_within_bounds(tmp_path):
  search = {"method": "random", "num_trials": 50, "seed": 3, "parameters": {
      "train.learning_rate": {"distribution": "log_uniform", "min": 1e-4, "max": 1e-2},
      "model.dropout": {"distribution": "uniform", "min": 0.0, "max": 0.5},
      "train.batch_size": {"distribution": "choice", "values": [32, 64]}}}
  base = small_config("single", 1)
  a, b = _asked(search, base, tmp_path / "a"), _asked(search, base, tmp_path / "b")
  assert a == b and len(a) == 50
  lrs = np.array([t["train.learning_rate"] for t in a])
  assert lrs.min() >= 1e-4 and lrs.max() <= 1e-2 and np.median(np.log10(lrs)) == pytest.approx(-3, abs=0.5)
  assert {t["train.batch_size"] for t in a} == {32, 64}
  other = _asked({**search, "seed": 4}, base, tmp_path / "c")
  assert other != a  # the sweep's seed, not the process, decides


@pytest.mark.parametrize("search, match", [
    ({"method": "grid", "parameters": {"train.lr": [1e-3]}}, r"train\.lr: no such config field"),
    ({"method": "grid", "parameters": {"train.learning_rate": []}}, "non-empty list"),
    ({"method": "grid", "parameters": {}}, "no parameters"),
    ({"method": "bayes", "parameters": {"train.learning_rate": [1]}},
     r"method must be one of \['grid', 'random', 'tpe', 'cmaes'\]"),
    ({"method": "random", "num_trials": 4, "parameters": {"train.learning_rate": {
        "distribution": "log_uniform", "min": 0.0, "max": 1e-2}}}, "log_uniform needs min > 0"),
    ({"method": "random", "num_trials": 4, "parameters": {"model.dropout": {
        "distribution": "uniform", "min": 0.5, "max": 0.1}}}, "min < max"),
    ({"method": "random", "num_trials": 0, "parameters": {"model.dropout": {
        "distribution": "uniform", "min": 0.0, "max": 0.1}}}, "num_trials > 0"),
    ({"method": "grid", "parameters": {"train.learning_rate": [1e-3, -1.0]}},
     r"train\.learning_rate: must be positive"),
])
def test_bad_sweeps_are_refused_before_any_trial(search, match, tmp_path):
  with pytest.raises(SweepError, match=match):
    sweep.run_sweep(small_config("single", 1), search, tmp_path / "s")
  assert not (tmp_path / "s").exists()


def test_trials_group_by_everything_but_numeric_hyperparameters():
  base = small_config("single", 1)
  trials = [{"train.learning_rate": 1e-3, "train.batch_size": 32},
            {"train.learning_rate": 3e-3, "train.batch_size": 32},
            {"train.learning_rate": 1e-3, "train.batch_size": 64}]
  configs = [spec.trial_config(base, t) for t in trials]
  assert spec.group_trials(configs) == [[0, 1], [2]]


def _largest_gap(a, b) -> float:
  """The largest absolute difference between two pytrees of the same structure."""
  return max(float(np.abs(x - y).max())
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_vmapped_trials_equal_lone_runs(tmp_path, monkeypatch, raw_dir, tfds_dir):
  monkeypatch.setenv("JAXDIGITS_RAW_DATA", str(raw_dir))
  monkeypatch.setenv("JAXDIGITS_DATA_DIR", str(tfds_dir))
  # Dropout, random shifts and BatchNorm on: every source of per-trial randomness.
  base = small_config("single", 1, **{"train.schedule": "onecycle", "model.dropout": 0.25})
  search = {"method": "random", "num_trials": 3, "seed": 0, "parameters": {
      "train.learning_rate": {"distribution": "log_uniform", "min": 1e-3, "max": 3e-3},
      "train.weight_decay": {"distribution": "log_uniform", "min": 1e-4, "max": 1e-2},
      "seed": {"distribution": "choice", "values": list(range(100))}}}
  # Through the study: the three trials are asked at once and trained as one program.
  rows = sweep.run_sweep(base, search, tmp_path / "s", group_size=3)
  vdirs = [tmp_path / "s" / r["trial"] for r in rows]
  overrides = [json.loads((d / "trial.json").read_text()) for d in vdirs]
  assert len({o["seed"] for o in overrides}) == 3, overrides  # distinct trials
  configs = [spec.trial_config(base, o) for o in overrides]
  alone = []
  for i, config in enumerate(configs):
    train.train_and_evaluate(config, tmp_path / f"alone{i}", evaluate_test=False)
    alone.append(saved_state(tmp_path / f"alone{i}", config))
  model = lambda state: {k: state[k] for k in ("params", "batch_stats", "step")}
  for i, config in enumerate(configs):
    vmapped = model(saved_state(vdirs[i], config))
    for j, lone in enumerate(alone):
      gap = _largest_gap(vmapped, model(lone))
      # Its own lone run to float rounding (measured <= 1.3e-5: on the CPU the group's
      # convolutions run as matmuls, another summation order); any other trial's is far.
      assert gap < 1e-4 if i == j else gap > 0.1, (i, j, gap)
  for i in range(3):  # the engine's one final record, as a lone run writes it, minus test
    vmapped, lone = records.read(vdirs[i]).final, records.read(tmp_path / f"alone{i}").final
    assert set(vmapped) == set(lone) == {"step", *records.FINAL_KEYS}, (vmapped, lone)
    assert all(vmapped[k] is not None for k in records.FINAL_KEYS), vmapped
    assert (vmapped["strategy"], vmapped["trials"], lone["trials"]) == ("vmapped", 3, 1)
    assert vmapped["best_epoch"] == 1 and 0 < vmapped["compile_seconds"]


def test_interrupted_vmapped_group_resumes_where_it_stopped(tmp_path, monkeypatch, raw_dir,
                                                           tfds_dir):
  monkeypatch.setenv("JAXDIGITS_RAW_DATA", str(raw_dir))
  monkeypatch.setenv("JAXDIGITS_DATA_DIR", str(tfds_dir))
  configs = [spec.trial_config(small_config("single", 2), {"seed": s}) for s in (0, 1)]
  whole, cut = [tmp_path / f"w{i}" for i in range(2)], [tmp_path / f"c{i}" for i in range(2)]
  sweep.train_vmapped(configs, whole)
  write = MetricsWriter.write

  def killed_in_epoch_2(self, step, record):
    if record.get("epoch") == 2:
      raise KeyboardInterrupt
    write(self, step, record)

  monkeypatch.setattr(MetricsWriter, "write", killed_in_epoch_2)
  with pytest.raises(KeyboardInterrupt):
    sweep.train_vmapped(configs, cut)
  monkeypatch.setattr(MetricsWriter, "write", write)
  epochs_run = []
  epoch_indices = pipeline.epoch_indices
  monkeypatch.setattr(pipeline, "epoch_indices",
                      lambda key, *a: epochs_run.append(key) or epoch_indices(key, *a))
  sweep.train_vmapped(configs, cut)  # resumes both trials from their epoch-1 checkpoints
  assert len(epochs_run) == 2  # epoch 2 of each trial only
  for config, a, b in zip(configs, whole, cut):
    ours, theirs = saved_state(a, config), saved_state(b, config)
    assert int(theirs["step"]) == int(ours["step"]) > 0
    gap = _largest_gap(ours, theirs)
    assert gap < 1e-5, gap


def test_sweep_cli_selects_on_validation_tests_only_the_best_and_resumes(tmp_path, data_env):
  sweep_file = tmp_path / "grid.py"
  sweep_file.write_text("def get_sweep():\n  return " + repr(
      {"method": "grid", "parameters": {"train.learning_rate": [1e-3, 5e-3]}}) + "\n")
  args = [sys.executable, "-m", "jaxdigits.sweep", "--config=configs/cnn.py",
          f"--sweep={sweep_file}", f"--workdir={tmp_path / 'run'}",
          "--config.data.train_limit=2048", "--config.model.features=(8,16)",
          "--config.model.dense=32", "--config.train.num_epochs=2",
          "--config.train.batch_size=64", "--config.progress_bar=False"]
  first = subprocess.run(args, cwd=REPO, env=data_env, capture_output=True, text=True,
                         timeout=600)
  assert first.returncode == 0, first.stderr[-3000:]
  assert "<- best on validation" in first.stdout
  with open(tmp_path / "run" / "results.csv") as f:
    rows = list(csv.DictReader(f))
  assert [r["trial"] for r in rows] == ["trial_000", "trial_001"]
  assert [r["state"] for r in rows] == ["complete", "complete"]
  assert [float(r["train.learning_rate"]) for r in rows] == [1e-3, 5e-3]  # the grid's order
  tested = [r for r in rows if r["test_accuracy"]]
  assert len(tested) == 1
  assert tested[0]["val_accuracy"] == max(r["val_accuracy"] for r in rows)
  assert float(tested[0]["test_accuracy"]) > 0.7  # chance is 0.1
  # Optuna's plots; importances need two parameters, this grid has one.
  assert not (tmp_path / "run" / "param_importances.png").exists()
  for name in ("optimization_history.png", "intermediate_values.png",
               "parallel_coordinate.png"):
    with Image.open(tmp_path / "run" / name) as im:  # a real figure, not an empty canvas
      pixels = np.asarray(im.convert("L"))
    assert min(pixels.shape) >= 300 and len(np.unique(pixels)) > 20, name
  for trial in ("trial_000", "trial_001"):  # a normal run folder, never tested on its own
    records = [json.loads(l) for l in (tmp_path / "run" / trial / "metrics.jsonl").read_text().splitlines()]
    assert all("test_accuracy" not in r for r in records)
  before = (tmp_path / "run" / "trial_000" / "metrics.jsonl").read_text()
  again = subprocess.run(args, cwd=REPO, env=data_env, capture_output=True, text=True, timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  assert (tmp_path / "run" / "trial_000" / "metrics.jsonl").read_text() == before  # skipped


class _PruneTrial(optuna.pruners.BasePruner):
  """Prunes one trial (by number) at its first report."""

  def __init__(self, number):
    self.number = number

  def prune(self, study, trial):
    return trial.number == self.number


def test_a_pruned_trial_stops_at_once_and_leaves_its_group_unchanged(tmp_path, monkeypatch,
                                                                       raw_dir, tfds_dir):
  monkeypatch.setenv("JAXDIGITS_RAW_DATA", str(raw_dir))
  monkeypatch.setenv("JAXDIGITS_DATA_DIR", str(tfds_dir))
  monkeypatch.setattr(space, "pruner", lambda name, epochs: _PruneTrial(1))
  base = small_config("single", 2)
  search = {"method": "grid", "pruner": "median", "parameters": {"seed": [0, 1]}}
  rows = sweep.run_sweep(base, search, tmp_path / "s")  # one vmapped group of two
  assert [(r["trial"], r["state"], r["epochs"]) for r in rows] == [
      ("trial_000", "complete", 2), ("trial_001", "pruned", 1)]
  assert rows[0]["test_accuracy"] is not None and rows[1]["test_accuracy"] is None
  pruned = records.read(tmp_path / "s" / "trial_001")
  assert pruned.final["best_epoch"] == 1 and pruned.final["trials"] == 2  # told at once
  assert (tmp_path / "s" / "trial_001" / "checkpoints" / "1").is_dir()  # kept, loadable
  assert not (tmp_path / "s" / "trial_001" / "checkpoints" / "2").exists()
  with open(tmp_path / "s" / "results.csv") as f:
    assert [r["state"] for r in csv.DictReader(f)] == ["complete", "pruned"]
  config = spec.trial_config(base, {"seed": 0})  # the survivor ends where it would alone
  train.train_and_evaluate(config, tmp_path / "alone", evaluate_test=False)
  gap = _largest_gap(saved_state(tmp_path / "s" / "trial_000", config),
                     saved_state(tmp_path / "alone", config))
  assert gap < 1e-4, gap


def test_sweep_cli_refuses_a_bad_sweep_in_one_line(tmp_path, data_env):
  sweep_file = tmp_path / "bad.py"
  sweep_file.write_text("def get_sweep():\n  return {'method': 'grid', 'parameters': {'train.lr': [1]}}\n")
  result = subprocess.run([sys.executable, "-m", "jaxdigits.sweep", "--config=configs/cnn.py",
                           f"--sweep={sweep_file}", f"--workdir={tmp_path / 'w'}"], cwd=REPO,
                          env=data_env, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2
  assert "sweep parameter train.lr: no such config field" in result.stderr
  assert "Traceback" not in result.stderr


def test_classic_sweep_selects_on_validation_and_tests_only_the_best(tmp_path, raw_dir,
                                                                      tfds_dir):
  from jaxdigits import config as config_lib  # pylint: disable=g-import-not-at-top
  base = config_lib.load_file(REPO / "configs" / "knn.py")
  base.data.raw_dir, base.data.tfds_dir = str(raw_dir), str(tfds_dir)
  base.data.train_limit = 2000
  search = {"method": "grid", "parameters": {"model.k": [1, 3, 5]}}
  rows = sweep.run_sweep(base, search, tmp_path)
  best = max(rows, key=lambda r: r["val_accuracy"])
  assert [r["test_accuracy"] is not None for r in rows].count(True) == 1
  assert best["test_accuracy"] > 0.8
  for r in rows:  # trials never computed test accuracy
    final = json.loads((tmp_path / r["trial"] / "metrics.jsonl").read_text().splitlines()[-1])
    assert "test_accuracy" not in final and final["val_accuracy"] == r["val_accuracy"]


@pytest.mark.parametrize("text, match", [
    ("def get_sweep(:\n", "invalid syntax at line 1"),
    ("SWEEP = {}\n", "defines no get_sweep"),
    ("def get_sweep():\n  return [1]\n", "must return a dict, got list")])
def test_a_broken_sweep_file_is_named(text, match, tmp_path):
  path = tmp_path / "s.py"
  path.write_text(text)
  with pytest.raises(SweepError, match=rf"sweep file {path}.*{match}"):
    spec.load_sweep(path)
