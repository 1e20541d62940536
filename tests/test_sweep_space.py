"""Sweep search spaces as Optuna distributions: what each method accepts and refuses."""

from __future__ import annotations

import optuna
import pytest

from jaxdigits.errors import SweepError
from jaxdigits.sweeps import space
from parallel_worker import small_config

LR = {"distribution": "log_uniform", "min": 1e-4, "max": 1e-2}


def test_a_tpe_space_maps_to_optuna_distributions():
  got = space.search_space({"method": "tpe", "num_trials": 8, "pruner": "median", "parameters": {
      "train.learning_rate": LR, "train.batch_size": {"distribution": "choice",
                                                      "values": [32, 64]}}},
                           small_config("single", 1))
  assert got["train.learning_rate"] == optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
  assert got["train.batch_size"].choices == (32, 64)


@pytest.mark.parametrize("sweep, match", [
    ({"method": "cmaes", "num_trials": 4, "parameters": {"train.batch_size": {
        "distribution": "choice", "values": [32, 64]}}}, "cmaes searches numeric spaces only"),
    ({"method": "tpe", "parameters": {"train.learning_rate": LR}}, "num_trials > 0"),
    ({"method": "tpe", "num_trials": 4, "pruner": "early", "parameters": {
        "train.learning_rate": LR}}, "pruner must be one of"),
    ({"method": "bayes", "parameters": {"train.learning_rate": LR}}, "method must be one of"),
    ({"method": "tpe", "num_trials": 4, "parameters": {"train.lr": LR}}, "no such config field"),
])
def test_bad_spaces_are_refused_naming_the_field(sweep, match):
  with pytest.raises(SweepError, match=match):
    space.search_space(sweep, small_config("single", 1))


def test_the_study_lives_in_the_workdir_and_a_reopen_resumes_it(tmp_path):
  sweep = {"method": "tpe", "num_trials": 3, "seed": 1, "pruner": "hyperband",
           "parameters": {"train.learning_rate": LR}}
  study = space.open_study(str(tmp_path), sweep, num_epochs=3)
  assert isinstance(study.pruner, optuna.pruners.HyperbandPruner)
  trial = study.ask({"train.learning_rate": space.search_space(sweep, small_config("single", 1))[
      "train.learning_rate"]})
  study.tell(trial, 0.5)
  again = space.open_study(str(tmp_path), sweep, num_epochs=3)
  assert (tmp_path / "study.journal").is_file()
  assert [t.value for t in again.trials] == [0.5]
  assert 1e-4 <= again.trials[0].params["train.learning_rate"] <= 1e-2


@pytest.mark.parametrize("sweep, match", [
    ({"method": "grid", "parameters": {"train.learning_rate": LR}}, "a grid needs a non-empty list"),
    ({"method": "grid", "parameters": {"model.features": [(8, 16), (16, 32)]}},
     "values must be numbers, strings, booleans or None"),
    ({"method": "random", "num_trials": 2, "seed": "0", "parameters": {
        "train.learning_rate": LR}}, "seed must be an integer"),
])
def test_what_a_study_cannot_hold_is_refused(sweep, match):
  with pytest.raises(SweepError, match=match):
    space.search_space(sweep, small_config("single", 1))
