"""Config validation: bad fields are refused before any work, naming the field.

Every shipped config is validated and built in test_models.py, which pins its parameter count."""

import pytest

from conftest import REPO
from jaxdigits import config as config_lib
from jaxdigits.config import ConfigError


def _cnn():
  return config_lib.load_file(REPO / "configs" / "cnn.py")


def test_missing_config_file_is_named():
  with pytest.raises(ConfigError, match="config file .*nope.py does not exist"):
    config_lib.load_file(REPO / "configs" / "nope.py")


@pytest.mark.parametrize("field, value, match", [
    ("data.dataset", "kmnist", r"data\.dataset: unknown dataset 'kmnist'"),
    ("model.name", "transformer", r"model\.name: unknown model 'transformer'"),
    ("model.widths", (1, 2), r"model\.widths: not an attribute of CNN"),
    ("train.batch_size", 0, r"train\.batch_size: must be a positive integer"),
    ("train.batch_size", -8, r"train\.batch_size: must be a positive integer"),
    ("train.batch_size", 60_000, r"train\.batch_size: 60000 is larger than the mnist train split"),
    ("train.learning_rate", 0.0, r"train\.learning_rate: must be positive"),
    ("train.learning_rate", -1e-3, r"train\.learning_rate: must be positive"),
    ("train.num_epochs", 0, r"train\.num_epochs: must be a positive integer"),
    ("train.optimizer", "lion", r"train\.optimizer: unknown optimizer 'lion'"),
    ("data.validation_fraction", 1.0, r"data\.validation_fraction: must be in \(0, 1\)"),
    ("train.max_rotation", -5.0, r"train\.max_rotation: must be in \[0, 90\] degrees"),
    ("train.max_scale", 1.0, r"train\.max_scale: must be in \[0, 1\)"),
    ("model.space_to_depth", 0, r"model\.space_to_depth: must be a positive integer"),
    ("model.padding", "same", r"model\.padding: must be 'SAME' or 'VALID'"),
    ("model.kernel_size", 0, r"model\.kernel_size: must be a positive integer"),
    ("model.crop", -1, r"model\.crop: must be an integer >= 0"),
    ("data.train_limit", -1, r"data\.train_limit: must be a non-negative integer"),
    ("train.schedule", "step", r"train\.schedule: unknown schedule 'step'"),
    ("train.weight_decay", -1e-4, r"train\.weight_decay: must be >= 0"),
    ("train.warmup_fraction", 1.0, r"train\.warmup_fraction: must be in \[0, 1\)"),
    ("train.label_smoothing", 1.0, r"train\.label_smoothing: must be in \[0, 1\)"),
    ("train.max_shift", -1, r"train\.max_shift: must be a non-negative integer"),
    ("train.steps_per_call", 0, r"train\.steps_per_call: must be a positive integer"),
    ("train.eval_batch_size", 0, r"train\.eval_batch_size: must be a positive integer"),
    ("parallel.strategy", "tpu", r"parallel\.strategy: unknown strategy 'tpu'"),
    ("parallel.init_timeout_seconds", 0, r"parallel\.init_timeout_seconds: must be a positive"),
    ("checkpoint.every_epochs", 0, r"checkpoint\.every_epochs: must be a positive integer"),
    ("checkpoint.keep", 0, r"checkpoint\.keep: must be a positive integer"),
])
def test_invalid_field_is_named(field, value, match):
  config = _cnn()
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ConfigError, match=match):
    config_lib.validate(config)


def test_batch_larger_than_a_limited_split_is_refused():
  config = _cnn()
  config.data.train_limit = 100
  config.train.batch_size = 128
  with pytest.raises(ConfigError, match=r"train\.batch_size: 128 is larger"):
    config_lib.validate(config)


def test_unknown_field_is_refused():
  config = _cnn()
  config.train.epochs = 3
  with pytest.raises(ConfigError, match=r"train\.epochs: unknown field"):
    config_lib.validate(config)
