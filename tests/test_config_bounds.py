"""Values that cannot train are refused by validate, naming the field (issue 18).

The real command's refusal (exit 2, one line) is a case of tests/test_cli_errors.py."""

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
    # Bounds that need the image, feature or split sizes (MNIST: 28x28, 54,000 train).
    ("cnn.py", "train.max_shift", 14, r"train\.max_shift: 14 pixels .* use at most 13"),
    ("usps_cnn.py", "train.max_shift", 14, r"train\.max_shift: .*28x28 usps"),  # resized
    ("cnn.py", "seed", -1, r"seed: must be in \[0, 2\*\*32 - 1\]"),
    ("cnn.py", "seed", 2**32, r"seed: must be in \[0, 2\*\*32 - 1\]"),
    ("cnn.py", "data.validation_fraction", 1e-6, r"validation_fraction: .* holds out none"),
    ("cnn.py", "data.validation_fraction", 0.999995, r"validation_fraction: .* leaves none"),
    ("knn.py", "model.k", 54_001, r"model\.k: 54001 neighbours of a 54000-example"),
    ("knn.py", "model.pca", 785, r"model\.pca: 785 components of 784 pixels .* at most 784"),
    ("hog_svm.py", "model.pca", 1297, r"model\.pca: 1297 components of 1296 hog"),
    ("random_forest.py", "model.max_features", 785, r"model\.max_features: 785 of 784"),
    ("random_forest.py", "model.max_features", 0, r"model\.max_features: 0 of 784"),
    ("random_forest.py", "model.max_features", 1.5, r"model\.max_features: must be 'sqrt'"),
    ("random_forest.py", "model.max_features", 0.0, r"model\.max_features: must be 'sqrt'"),
    ("random_forest.py", "model.max_features", "all", r"model\.max_features: must be 'sqrt'"),
    ("random_forest.py", "model.max_features", True, r"model\.max_features: must be 'sqrt'"),
])
def test_untrainable_value_is_refused(config_file, field, value, match):
  config = config_lib.load_file(REPO / "configs" / config_file)
  section, _, name = field.rpartition(".")
  node = config[section] if section else config
  if name in node and isinstance(value, str) != isinstance(node[name], str):
    del node[name]  # a ConfigDict field keeps its type; another type is a new field
  node[name] = value
  with pytest.raises(ConfigError, match=match):
    config_lib.validate(config)


@pytest.mark.parametrize("config_file", sorted(p.name for p in (REPO / "configs").glob("*.py")))
def test_shipped_configs_stay_valid(config_file):
  config_lib.validate(config_lib.load_file(REPO / "configs" / config_file))


@pytest.mark.parametrize("config_file, field, value", [
    ("cnn.py", "train.max_shift", 13), ("cnn.py", "seed", 2**32 - 1),
    ("cnn.py", "data.validation_fraction", 1e-5), ("knn.py", "model.k", 54_000),
    ("knn.py", "model.pca", 784), ("random_forest.py", "model.max_features", 784),
    ("random_forest.py", "model.max_features", 1.0),
    ("random_forest.py", "model.max_features", "log2"),
])
def test_the_last_valid_value_passes(config_file, field, value):
  config = config_lib.load_file(REPO / "configs" / config_file)
  section, _, name = field.rpartition(".")
  node = config[section] if section else config
  if name in node and isinstance(value, str) != isinstance(node[name], str):
    del node[name]
  node[name] = value
  config_lib.validate(config)


def test_train_limit_shrinks_the_split_knn_votes_in():
  config = config_lib.load_file(REPO / "configs" / "knn.py")
  config.data.train_limit, config.train.batch_size, config.model.k = 100, 32, 101
  with pytest.raises(ConfigError, match=r"model\.k: 101 neighbours of a 100-example"):
    config_lib.validate(config)

