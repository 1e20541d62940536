"""Values that cannot train are refused by validate, naming the field (issue 18)."""

import math

import pytest

from conftest import REPO
from jaxdigits import config as config_lib
from jaxdigits.config import ConfigError


@pytest.mark.parametrize("config_file, field, value, match", [
    ("cnn.py", "train.learning_rate", math.inf, r"train\.learning_rate: must be a finite"),
    ("cnn.py", "train.learning_rate", math.nan, r"train\.learning_rate: must be a finite"),
    ("cnn.py", "train.weight_decay", math.inf, r"train\.weight_decay: must be a finite"),
    ("cnn.py", "train.max_rotation", math.nan, r"train\.max_rotation: must be a finite"),
    ("cnn.py", "train.momentum", 1.0, r"train\.momentum: must be in \[0, 1\)"),
    ("cnn.py", "model.dropout", 1.5, r"model\.dropout: must be in \[0, 1\)"),
    ("cnn.py", "model.dropout", -0.1, r"model\.dropout: must be in \[0, 1\)"),
    ("cnn.py", "model.features", (8, 0), r"model\.features: must be a tuple of positive"),
    ("cnn.py", "model.features", (), r"model\.features: must name at least one layer"),
    ("cnn.py", "model.dense", -1, r"model\.dense: must be a non-negative integer"),
    ("cnn.py", "model.convs_per_block", 0, r"model\.convs_per_block: must be a positive"),
    ("mlp.py", "model.hidden", (512, -3), r"model\.hidden: must be a tuple of positive"),
    ("mlp.py", "model.dropout", 1.0, r"model\.dropout: must be in \[0, 1\)"),
    ("resnet.py", "model.blocks_per_stage", 0, r"model\.blocks_per_stage: must be a positive"),
    ("svm.py", "model.C", math.inf, r"model\.C: must be a finite"),
    ("svm.py", "model.gamma", -1.0, r"model\.gamma: 'scale' or a positive number"),
    ("knn.py", "model.k", 0, r"model\.k: must be a positive integer"),
])
def test_untrainable_value_is_refused(config_file, field, value, match):
  config = config_lib.load_file(REPO / "configs" / config_file)
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ConfigError, match=match):
    config_lib.validate(config)


@pytest.mark.parametrize("config_file", sorted(p.name for p in (REPO / "configs").glob("*.py")))
def test_shipped_configs_stay_valid(config_file):
  config_lib.validate(config_lib.load_file(REPO / "configs" / config_file))
