"""The config schema: defaults for every field, and the one place that validates them.

Config files in ``configs/`` start from ``defaults()`` and change what their recipe needs;
``validate`` rejects a bad config before any work, naming the field and the fix. What each
field means is in ``jaxdigits/config_doc.py`` (docs/config.md is generated from it).
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import ml_collections
from jaxdigits.errors import ConfigError
from ml_collections import config_dict

DATASETS = ("mnist", "usps")
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("onecycle", "cosine", "constant")
# Split sizes of the official train split, to check a batch fits before loading anything.
TRAIN_SIZES = {"mnist": 60_000, "usps": 7_291}
IMAGE_SIZES = {"mnist": 28, "usps": 16}
LABEL_FIX_MODES = ("remove", "relabel")
# Seeds reach jax.random.key, numpy's Generator (no negatives) and scikit-learn's
# random_state (at most 2**32 - 1): the range all three accept.
MAX_SEED = 2**32 - 1


def validation_start(dataset: str, fraction: float) -> int:
  """Where validation starts in ``dataset``'s official train split: its last ``fraction``
  (fixed, so model selection never depends on the seed). Training, evaluation and every
  command that re-reads a run's splits cut here."""
  n = TRAIN_SIZES[dataset]
  return n - round(n * fraction)


def defaults() -> ml_collections.ConfigDict:
  """Every field and its default (model.* past ``name`` come from the models); what each
  means: ``jaxdigits.config_doc.FIELDS``."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.dataset = "mnist"
  config.data.raw_dir = config_dict.placeholder(str)
  config.data.tfds_dir = config_dict.placeholder(str)
  config.data.validation_fraction = 0.1
  config.data.mnist_style = False
  config.data.train_limit = 0
  config.data.label_fixes = config_dict.placeholder(str)
  config.data.label_fix_mode = "remove"
  config.data.extra_train = config_dict.placeholder(str)

  config.model = ml_collections.ConfigDict()
  config.model.name = "cnn"

  config.train = ml_collections.ConfigDict()
  config.train.num_epochs = 5
  config.train.batch_size = 128
  config.train.learning_rate = 3e-3
  config.train.optimizer = "adamw"
  config.train.momentum = 0.9
  config.train.weight_decay = 1e-4
  config.train.schedule = "onecycle"
  config.train.warmup_fraction = 0.2
  config.train.label_smoothing = 0.0
  config.train.max_shift = 0
  config.train.max_rotation = 0.0
  config.train.max_scale = 0.0
  config.train.steps_per_call = 4  # measured: benchmarks/input_pipeline.py
  config.train.eval_batch_size = 500  # measured faster than 1000 on XLA:CPU

  config.parallel = ml_collections.ConfigDict()
  config.parallel.strategy = "auto"
  config.parallel.distributed = False
  config.parallel.coordinator_address = config_dict.placeholder(str)
  config.parallel.num_processes = config_dict.placeholder(int)
  config.parallel.process_id = config_dict.placeholder(int)
  config.parallel.init_timeout_seconds = 120

  config.checkpoint = ml_collections.ConfigDict()
  config.checkpoint.every_epochs = 1
  config.checkpoint.keep = 2
  config.progress_bar = True
  return config


def load_file(path: str | os.PathLike) -> ml_collections.ConfigDict:
  """``get_config()`` of a config file, as ``--config=path`` would load it."""
  spec = importlib.util.spec_from_file_location(f"jaxdigits_config_{Path(path).stem}", path)
  if spec is None or not Path(path).is_file():
    raise ConfigError(f"config file {path} does not exist")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def image_shape(data: ml_collections.ConfigDict) -> tuple[int, int, int]:
  """The model's input shape (H, W, 1) for ``config.data``."""
  size = 28 if data.mnist_style else IMAGE_SIZES[data.dataset]
  return (size, size, 1)


# Fields a resumed run may change without making its checkpoints incompatible.
# The parallel layout may change too: checkpoints restore onto any device count.
RESUMABLE_CHANGES = ("data.raw_dir", "data.tfds_dir", "train.num_epochs",
                     "train.eval_batch_size", "checkpoint.every_epochs", "checkpoint.keep",
                     "progress_bar", "parallel.strategy", "parallel.distributed",
                     "parallel.coordinator_address", "parallel.num_processes",
                     "parallel.process_id", "parallel.init_timeout_seconds")
STRATEGIES = ("auto", "single", "pmap", "sharded")


def _require(ok: bool, field: str, message: str) -> None:
  if not ok:
    raise ConfigError(f"config field {field}: {message}")


def _check_finite(config: ml_collections.ConfigDict, prefix: str = "") -> None:
  # inf or nan passes every range comparison written as "not below": a run then trains to NaN
  # loss and exits 0, so every number anywhere (model.* and tuples included) must be finite.
  for key, value in config.items():
    field = f"{prefix}{key}"
    if hasattr(value, "items"):
      _check_finite(value, f"{field}.")
      continue
    for v in value if isinstance(value, (tuple, list)) else (value,):
      _require(not (isinstance(v, float) and not math.isfinite(v)), field,
               f"must be a finite number, got {v!r}")


def _number(value: object) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_types(config: ml_collections.ConfigDict, known: dict, prefix: str) -> None:
  # The range checks compare; a value of another type (None, a string, a dict from a config
  # file) must be refused here, naming its field, and not as a TypeError from a comparison.
  for key, default in known.items():
    if key not in config or default is None or hasattr(default, "items"):
      continue
    v, field = config[key], f"{prefix}{key}"
    if isinstance(default, bool):
      _require(isinstance(v, bool), field, f"must be True or False, got {v!r}")
    elif isinstance(default, int):
      _require(isinstance(v, int) and not isinstance(v, bool), field,
               f"must be an integer, got {v!r}")
    elif isinstance(default, float):
      _require(_number(v), field, f"must be a number, got {v!r}")
    elif isinstance(default, str) and key != "gamma" and key != "max_features":
      _require(isinstance(v, str), field, f"must be a string, got {v!r}")
    elif isinstance(default, (tuple, list)):
      _require(isinstance(v, (tuple, list)), field, f"must be a tuple, got {v!r}")


def _check_model_bounds(m: ml_collections.ConfigDict) -> None:
  # Bounds the model classes do not check themselves: a dropout of 1 or more drops every unit
  # (an untrained model that still exits 0), widths of 0 or less build nothing.
  if "dropout" in m:
    _require(_number(m.dropout) and 0 <= m.dropout < 1, "model.dropout",
             f"must be in [0, 1), got {m.dropout!r}")
  for field in ("features", "hidden", "stage_features"):
    if field in m and m.name in ("cnn", "mlp", "resnet"):
      v = m[field]
      _require(isinstance(v, (tuple, list)) and all(
          isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v),
          f"model.{field}", f"must be a tuple of positive integers, got {v!r}")
      _require(len(v) > 0 or field == "hidden", f"model.{field}",
               "must name at least one layer")
  for field in ("convs_per_block", "blocks_per_stage", "num_classes"):
    if field in m:
      _require(isinstance(m[field], int) and not isinstance(m[field], bool) and m[field] > 0,
               f"model.{field}", f"must be a positive integer, got {m[field]!r}")
  if "dense" in m:
    _require(isinstance(m.dense, int) and not isinstance(m.dense, bool) and m.dense >= 0,
             "model.dense", f"must be a non-negative integer (0: no hidden layer), got {m.dense!r}")
  if "dtype" in m:
    _require(m.dtype in ("float32", "bfloat16"), "model.dtype",
             f"must be 'float32' or 'bfloat16', got {m.dtype!r}")
  if m.get("name") == "svm" and m.get("gamma", "scale") != "scale":
    _require(_number(m.gamma) and m.gamma > 0, "model.gamma",
             f"'scale' or a positive number, got {m.gamma!r}")


def validate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Checks every field jaxdigits reads; returns the config unchanged or raises ConfigError."""
  _check_finite(config)
  known = defaults()
  for section in ("data", "train", "parallel", "checkpoint"):
    _require(section in config, section, "missing section; start configs from "
             "jaxdigits.config.defaults()")
    unknown = sorted(set(config[section]) - set(known[section]))
    _require(not unknown, f"{section}.{unknown[0] if unknown else ''}",
             f"unknown field; {section} takes {sorted(known[section])}")
    _check_types(config[section], known[section], f"{section}.")
  _check_types(config, {"seed": 0, "progress_bar": True}, "")
  _require("model" in config and "name" in config.model, "model.name", "missing; choose a model")
  _require(isinstance(config.model.name, str), "model.name",
           f"must be a string, got {config.model.name!r}")
  from jaxdigits import models  # pylint: disable=g-import-not-at-top
  if config.model.name in {*models.REGISTRY, *models.CLASSIC}:
    _check_types(config.model, models.config_fields(config.model.name), "model.")
  for section, field in (("data", "raw_dir"), ("data", "tfds_dir"), ("data", "label_fixes"),
                         ("parallel", "coordinator_address")):
    v = config[section].get(field)
    _require(v is None or isinstance(v, str), f"{section}.{field}", f"must be a path, got {v!r}")
  for field in ("num_processes", "process_id"):
    v = config.parallel.get(field)
    _require(v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0),
             f"parallel.{field}", f"must be a non-negative integer or None, got {v!r}")
  d, t, c = config.data, config.train, config.checkpoint
  _require(isinstance(config.seed, int), "seed", f"must be an integer, got {config.seed!r}")
  _require(0 <= config.seed <= MAX_SEED, "seed",
           f"must be in [0, 2**32 - 1] (what jax, numpy and scikit-learn all accept), got "
           f"{config.seed}")
  _require(d.dataset in DATASETS, "data.dataset",
           f"unknown dataset {d.dataset!r}; choose one of {list(DATASETS)}")
  _require(0 < d.validation_fraction < 1, "data.validation_fraction",
           f"must be in (0, 1), got {d.validation_fraction!r}")
  _require(isinstance(d.train_limit, int) and d.train_limit >= 0, "data.train_limit",
           f"must be a non-negative integer (0 means all), got {d.train_limit!r}")
  train_size = _check_split_sizes(d)
  _check_label_fixes(d)
  extra = d.get("extra_train")  # absent in configs of runs that predate it
  _require(extra is None or (extra in DATASETS and extra != d.dataset and d.mnist_style),
           "data.extra_train", f"{extra!r}: name another dataset of {list(DATASETS)} and set "
           f"data.mnist_style=True (both then read 28x28), or None")
  _require(isinstance(t.num_epochs, int) and t.num_epochs > 0, "train.num_epochs",
           f"must be a positive integer, got {t.num_epochs!r}")
  _require(isinstance(t.batch_size, int) and t.batch_size > 0, "train.batch_size",
           f"must be a positive integer, got {t.batch_size!r}")
  _require(t.batch_size <= train_size, "train.batch_size",
           f"{t.batch_size} is larger than the {d.dataset} train split ({train_size} examples "
           f"after validation is held out); use a smaller batch")
  _require(_number(t.learning_rate) and t.learning_rate > 0, "train.learning_rate",
           f"must be positive, got {t.learning_rate!r}")
  _require(_number(t.momentum) and 0 <= t.momentum < 1, "train.momentum",
           f"must be in [0, 1), got {t.momentum!r}")
  _require(t.optimizer in OPTIMIZERS, "train.optimizer",
           f"unknown optimizer {t.optimizer!r}; choose one of {list(OPTIMIZERS)}")
  _require(t.schedule in SCHEDULES, "train.schedule",
           f"unknown schedule {t.schedule!r}; choose one of {list(SCHEDULES)}")
  _require(t.weight_decay >= 0, "train.weight_decay", "must be >= 0")
  _require(0 <= t.warmup_fraction < 1, "train.warmup_fraction", "must be in [0, 1)")
  _require(0 <= t.label_smoothing < 1, "train.label_smoothing", "must be in [0, 1)")
  _require(isinstance(t.max_shift, int) and t.max_shift >= 0, "train.max_shift",
           "must be a non-negative integer")
  size = image_shape(d)[0]
  # Half the frame or more can carry more than half of a digit out of the picture (the
  # zero fill then shows a fragment or nothing under the digit's label).
  _require(t.max_shift < size // 2, "train.max_shift",
           f"{t.max_shift} pixels moves {size}x{size} {d.dataset} digits by half the image or "
           f"more; use at most {size // 2 - 1} (configs/cnn.py uses 2)")
  _require(0 <= t.max_rotation <= 90, "train.max_rotation", "must be in [0, 90] degrees")
  _require(0 <= t.max_scale < 1, "train.max_scale", "must be in [0, 1)")
  _require(isinstance(t.steps_per_call, int) and t.steps_per_call > 0, "train.steps_per_call",
           "must be a positive integer")
  _require(isinstance(t.eval_batch_size, int) and t.eval_batch_size > 0, "train.eval_batch_size",
           "must be a positive integer")
  p = config.parallel
  _require(p.strategy in STRATEGIES, "parallel.strategy",
           f"unknown strategy {p.strategy!r}; choose one of {list(STRATEGIES)}")
  _require(isinstance(p.init_timeout_seconds, int) and p.init_timeout_seconds > 0,
           "parallel.init_timeout_seconds", "must be a positive integer")
  _require(isinstance(c.every_epochs, int) and c.every_epochs > 0, "checkpoint.every_epochs",
           "must be a positive integer")
  _require(isinstance(c.keep, int) and c.keep > 0, "checkpoint.keep", "must be a positive integer")
  # The model registry names the bad model field itself.
  _check_model_bounds(config.model)
  try:
    models.check(config.model)
  except ValueError as e:
    raise ConfigError(str(e)) from e
  if config.model.name in models.CLASSIC:
    _check_classic_sizes(config.model, size, train_size)
  return config


def _check_split_sizes(d: ml_collections.ConfigDict) -> int:
  """Refuses a validation fraction that leaves either split empty; the train split's size."""
  n = TRAIN_SIZES[d.dataset]
  held = n - validation_start(d.dataset, d.validation_fraction)
  _require(held >= 1, "data.validation_fraction",
           f"{d.validation_fraction!r} of the {n} {d.dataset} train examples holds out none "
           f"for validation; use at least {1 / n:.2g}")
  _require(held < n, "data.validation_fraction",
           f"{d.validation_fraction!r} of the {n} {d.dataset} train examples leaves none to "
           f"train on; use at most {(n - 1) / n:.6g}")
  return min(n - held, d.train_limit) if d.train_limit else n - held


def _check_label_fixes(d: ml_collections.ConfigDict) -> None:
  # .get: configs saved by runs that predate these fields lack them.
  mode = d.get("label_fix_mode", LABEL_FIX_MODES[0])
  _require(mode in LABEL_FIX_MODES, "data.label_fix_mode",
           f"unknown mode {mode!r}; choose one of {list(LABEL_FIX_MODES)}")
  if d.get("label_fixes"):
    from jaxdigits.data import label_fixes  # pylint: disable=g-import-not-at-top
    label_fixes.read(d.label_fixes, TRAIN_SIZES[d.dataset])  # file, columns, values


def feature_count(features: str, size: int) -> int:
  """Values per example of a classic model's ``features`` on size x size digits."""
  if features != "hog":
    return size * size  # pixels and sobel: one value per pixel
  from jaxdigits.models.features import HOG_DEFAULTS as h  # pylint: disable=g-import-not-at-top
  blocks = size // h["cell"] - h["block"] + 1
  return blocks * blocks * h["block"] ** 2 * h["orientations"]


def _check_classic_sizes(m: ml_collections.ConfigDict, size: int, train_size: int) -> None:
  # Bounds that need the split and feature sizes; scikit-learn would refuse them only after
  # the features are computed (PCA, the forest) or kNN would vote with fewer neighbours.
  from jaxdigits.models import classic  # pylint: disable=g-import-not-at-top
  s = classic.settings(m)  # the model's defaults filled in
  features, pca = feature_count(s["features"], size), s["pca"]
  _require(pca <= min(features, train_size), "model.pca",
           f"{pca} components of {features} {s['features']} features on {train_size} "
           f"training examples; use at most {min(features, train_size)} (0: no PCA)")
  if "k" in s:
    _require(s["k"] <= train_size, "model.k", f"{s['k']} neighbours of a {train_size}-example "
             f"train split; use at most {train_size}")
  if m.name == "random_forest":
    _check_max_features(s["max_features"], pca or features)


def _check_max_features(v: object, features: int) -> None:
  hint = f"'sqrt', 'log2', an integer in [1, {features}] or a fraction in (0, 1]"
  if isinstance(v, str) or v is None:
    _require(v in ("sqrt", "log2"), "model.max_features", f"must be {hint}, got {v!r}")
  elif isinstance(v, int) and not isinstance(v, bool):
    _require(1 <= v <= features, "model.max_features",
             f"{v} of {features} features; use {hint}")
  else:
    _require(isinstance(v, float) and 0 < v <= 1, "model.max_features",
             f"must be {hint}, got {v!r}")
