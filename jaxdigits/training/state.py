"""The training state: parameters, optimizer and batch statistics, built from a config.

Kept apart from ``train`` so that loading a checkpoint for inference (evaluate, predict,
demo) can rebuild the state's structure without importing the trainer.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
  batch_stats: Any


def make_optimizer(t: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
  """The optimizer and learning-rate schedule named by ``config.train``."""
  if t.schedule == "onecycle":
    lr = optax.cosine_onecycle_schedule(total_steps, t.learning_rate,
                                        pct_start=max(t.warmup_fraction, 1e-3))
  elif t.schedule == "cosine":
    lr = optax.warmup_cosine_decay_schedule(0.0, t.learning_rate,
                                            int(t.warmup_fraction * total_steps), total_steps)
  else:
    lr = t.learning_rate
  if t.optimizer == "adamw":
    return optax.adamw(lr, weight_decay=t.weight_decay)
  return optax.chain(optax.add_decayed_weights(t.weight_decay),
                     optax.sgd(lr, momentum=t.momentum, nesterov=True))


def init_fn(model: nn.Module, tx: optax.GradientTransformation,
            image_shape: tuple[int, ...]) -> Callable[[jax.Array], TrainState]:
  """key → a fresh state (pure; vmap it for several trials, run it with ``run_once``)."""
  def init(key):
    variables = model.init(key, jnp.zeros((1, *image_shape), jnp.float32), train=False)
    return TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                             batch_stats=variables.get("batch_stats", {}))
  return init


def run_once(fn: Callable[..., Any], *args: Any) -> Any:
  """``fn(*args)`` as one compiled program, for code that runs once per process.

  One program, because op by op the initialisation took ~4 s of a 1-epoch run on a CPU.
  On a CPU it is compiled without XLA's backend optimisations: they cost 0.95 s of
  configs/fast.py's 1.4 s of initialisation to save microseconds in a program that runs
  once (the results agree to the last bit or two of a float).
  """
  jitted = jax.jit(fn)
  if jax.default_backend() != "cpu":
    return jitted(*args)
  return jitted.lower(*args).compile(
      compiler_options={"xla_backend_optimization_level": 0})(*args)


def create_train_state(key: jax.Array, model: nn.Module, tx: optax.GradientTransformation,
                       image_shape: tuple[int, ...]) -> TrainState:
  """A fresh state for ``model`` on images of ``image_shape``, initialised from ``key``."""
  return run_once(init_fn(model, tx, image_shape), key)
