"""K-fold out-of-sample probabilities of a training split, for label issues on it.

K models of one config, model k trained without fold k and scoring only fold k. They train
as ONE vmapped program (``programs.Vmapped``: each its own parameters, seed and shuffle) on
the engine's own train steps. Not ``engine.train_trials``: its trials share one training
set, while here each trial draws its batches from its own K-1 folds (indices into the one
device-resident split, so the data sit on the device once). ``vmapped=False`` trains the
K models one after another, the same way, for the wall-time comparison.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np

from jaxdigits import config as config_lib
from jaxdigits.data import Split, pipeline
from jaxdigits.errors import ConfigError
from jaxdigits.inference import contract
from jaxdigits import models as models_lib
from jaxdigits.models import forward
from jaxdigits.training import engine, programs
from jaxdigits.training.state import make_optimizer


def assign_folds(n: int, folds: int, seed: int) -> np.ndarray:
  """Fold of each example [n]: a seeded shuffle dealt round-robin, so sizes differ by <= 1."""
  if not 2 <= folds <= n:
    raise ConfigError(f"--folds must be between 2 and the {n} training examples, got {folds}")
  fold = np.empty(n, np.int64)
  fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
  return fold


def _train(configs: Sequence[ml_collections.ConfigDict], train: Split,
           pools: Sequence[np.ndarray]) -> tuple[programs.Program, Any]:
  """Trains trial j of ``configs`` on ``train.images[pools[j]]``; (program, state)."""
  t = configs[0].train
  program = programs.build(configs)
  steps_per_epoch = min(len(p) for p in pools) // t.batch_size
  if steps_per_epoch < 1:
    raise ConfigError(f"train.batch_size={t.batch_size} is larger than a fold's training set "
                      f"({min(len(p) for p in pools)} examples); lower it or use fewer folds")
  total = steps_per_epoch * t.num_epochs
  keys = [jax.random.split(jax.random.key(c.seed), 3) for c in configs]
  state = program.init([k[0] for k in keys], make_optimizer(t, total), train.images.shape[1:])
  data = program.place_data(train.images, train.labels)
  opts = dict(max_shift=t.max_shift, label_smoothing=t.label_smoothing,
              max_rotation=t.max_rotation, max_scale=t.max_scale, axis_name=program.axis_name)
  plan = engine.epoch_plan(steps_per_epoch, min(t.steps_per_call, steps_per_epoch))
  steps = {n: program.compile(engine.train_steps(n, **opts), state, data,
                              [k[2] for k in keys], n, t.batch_size, total)
           for n in {n for _, n in plan}}
  for epoch in range(t.num_epochs):
    # Each trial's own shuffle of its own pool, as positions in the whole split.
    indices = np.stack([
        pool[pipeline.epoch_indices(k[1], len(pool), t.batch_size, epoch)[:steps_per_epoch]]
        .astype(np.int32) for pool, k in zip(pools, keys)])
    for i, n in plan:
      state, _ = steps[n](state, indices[:, i:i + n])
  return program, state


def kfold_probabilities(config: ml_collections.ConfigDict, train: Split, folds: int = 5, *,
                        vmapped: bool = True) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
  """Out-of-fold probabilities [N, 10] of ``train`` (the only data it reads), the fold of
  each example, and timings. Trial k is ``config`` with seed ``config.seed + k``."""
  config = config_lib.validate(config)
  if config.model.name in models_lib.CLASSIC:
    raise ConfigError(f"--folds trains Flax models; model.name={config.model.name!r} is a "
                      f"classic model: evaluate a Flax run (cnn, mlp, resnet, linear)")
  if config.seed + folds - 1 > config_lib.MAX_SEED:
    raise ConfigError(f"config field seed: fold k trains with seed + k, so {config.seed} + "
                      f"{folds - 1} passes 2**32 - 1; use a seed of at most "
                      f"{config_lib.MAX_SEED - folds + 1}")
  fold = assign_folds(len(train), folds, config.seed)
  configs = []
  for k in range(folds):
    c = config.copy_and_resolve_references()
    c.seed = config.seed + k
    configs.append(c)
  pools = [np.flatnonzero(fold != k) for k in range(folds)]
  start = time.perf_counter()
  if vmapped:
    program, state = _train(configs, train, pools)
    models = [(program, program.variables(state, k)) for k in range(folds)]
  else:
    models = []
    for k in range(folds):
      program, state = _train(configs[k:k + 1], train, pools[k:k + 1])
      models.append((program, program.variables(state, 0)))
  train_seconds = time.perf_counter() - start
  probs = np.zeros((len(train), 10))
  for k, (program, variables) in enumerate(models):
    held = np.flatnonzero(fold == k)
    logits = forward.batched_logits(program.model.apply, variables, train.images[held],
                                    config.train.eval_batch_size)
    probs[held] = contract.softmax(logits)
  return probs, fold, {"train_seconds": train_seconds, "folds": folds, "vmapped": vmapped}
