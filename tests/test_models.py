"""Each Flax model in the registry trains through the one trainer and beats chance."""

from __future__ import annotations

import pytest

from conftest import tiny_config
from jaxdigits import train

FIELDS = {
    "linear": {},
    "mlp": {"model.hidden": (64,)},
    "resnet": {"model.stage_features": (8, 16), "model.blocks_per_stage": 1},
}


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_tiny_run_beats_chance(raw_dir, tfds_dir, tmp_path, name):
  config = tiny_config(raw_dir, tfds_dir, **{"data.train_limit": 3000, "train.num_epochs": 2,
                                             **FIELDS[name]})
  config.model = type(config.model)({"name": name, **{k.split(".")[1]: v for k, v in
                                                      FIELDS[name].items()}})
  final = train.train_and_evaluate(config, tmp_path)
  # Chance is 0.10; the ResNet's BatchNorm statistics lag after ~90 steps, so the floor is low.
  assert final["test_accuracy"] > 0.25, final
