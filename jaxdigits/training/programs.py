"""How the engine's epoch loop runs its trials: one under a parallel strategy, or T vmapped.

A program trains T >= 1 trials whose configs differ at most in ``VMAPPED`` fields, on the
same training split. The engine's loop is the same for every program; a program only says
how states, batches and compiled steps are laid out:

- ``Strategy``: one trial under ``parallel.Strategy`` (single device, pmap, or sharded).
- ``Vmapped``: T trials on one device as one ``jax.vmap``-ed program, each with its own
  parameters, optimizer state, seed (data order, dropout, shifts) and hyperparameters
  (traced, so trials with different learning rates share one compilation).

States carry the trials' axis only inside a program; ``view(state, j)`` is trial j's state
as its checkpoints hold it, and ``variables(state, j)`` its variables on one device.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Callable, ClassVar, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdigits import models
from jaxdigits.models.cnn import conv_as_matmul
from jaxdigits.training import parallel
from jaxdigits.training.state import create_train_state, init_fn, make_optimizer, run_once

# Fields that may differ between the trials of one program: they change values, not programs.
VMAPPED = ("seed", "train.learning_rate", "train.weight_decay", "train.momentum")
# (state, host indices [T, n, batch]) → (state, host metric sums [T, 2]).
Steps = Callable[[Any, np.ndarray], tuple[Any, np.ndarray]]
StepsFn = Callable[..., Any]  # train_steps(n, ...) as built by the engine, not yet compiled


def _variables(state: Any) -> dict[str, Any]:
  return {"params": state.params, "batch_stats": state.batch_stats}


@dataclasses.dataclass(frozen=True)
class Strategy:
  """One trial under a data-parallel strategy."""

  strategy: parallel.Strategy
  model: nn.Module  # trains and validates (BatchNorm over the pmap axis under pmap)
  trials: ClassVar[int] = 1

  @property
  def name(self) -> str:
    return self.strategy.name

  @property
  def num_devices(self) -> int:
    return self.strategy.num_devices

  @property
  def axis_name(self) -> str | None:
    return parallel.AXIS if self.name == "pmap" else None

  def init(self, keys: Sequence[jax.Array], tx: Any, shape: tuple[int, ...]) -> Any:
    return self.strategy.place_state(create_train_state(keys[0], self.model, tx, shape))

  def view(self, state: Any, j: int) -> Any:
    return self.strategy.checkpoint_view(state)

  def from_views(self, views: Sequence[Any]) -> Any:
    return self.strategy.from_checkpoint(views[0])

  def variables(self, state: Any, j: int) -> dict[str, Any]:
    return _variables(self.strategy.unreplicate(state))

  def view_variables(self, view: Any) -> dict[str, Any]:
    return _variables(self.strategy.unreplicate(self.strategy.from_checkpoint(view)))

  def place_data(self, images: np.ndarray, labels: np.ndarray) -> tuple[jax.Array, jax.Array]:
    return self.strategy.place_data(images, labels)

  def compile(self, steps_fn: StepsFn, state: Any, data: tuple[jax.Array, jax.Array],
              step_keys: Sequence[jax.Array], n: int, batch: int, total_steps: int) -> Steps:
    """``steps_fn`` compiled ahead of its first call, for ``n`` steps of ``batch``."""
    del total_steps  # the state's own optimizer holds the schedule
    key = step_keys[0]
    compiled = self.strategy.compile(steps_fn).lower(
        state, *data, self.strategy.place_indices(np.zeros((n, batch), np.int32)), key).compile()

    def run(state, indices):
      state, sums = compiled(state, *data, self.strategy.place_indices(indices[0]), key)
      return state, self.strategy.total(sums)[None]

    return run


@dataclasses.dataclass(frozen=True)
class Vmapped:
  """T trials on one device; per-trial hyperparameters are traced arguments."""

  configs: tuple[ml_collections.ConfigDict, ...]
  model: nn.Module  # validates: one trial at a time, XLA's convolution is the faster one
  trained: nn.Module  # trains: on the CPU its convolutions run as matmuls (conv_as_matmul)
  device: Any
  name: ClassVar[str] = "vmapped"
  num_devices: ClassVar[int] = 1
  axis_name: ClassVar[None] = None

  @property
  def trials(self) -> int:
    return len(self.configs)

  def init(self, keys: Sequence[jax.Array], tx: Any, shape: tuple[int, ...]) -> Any:
    # vmapped, the initialisation compiles once instead of once per trial (~1.8 s each).
    stacked = run_once(jax.vmap(init_fn(self.trained, tx, shape)), jnp.stack(keys))
    return jax.device_put(stacked, self.device)

  def view(self, state: Any, j: int) -> Any:
    return jax.tree.map(lambda x: x[j], state)

  def from_views(self, views: Sequence[Any]) -> Any:
    return jax.device_put(jax.tree.map(lambda *xs: jnp.stack(xs), *views), self.device)

  def variables(self, state: Any, j: int) -> dict[str, Any]:
    return _variables(self.view(state, j))

  def view_variables(self, view: Any) -> dict[str, Any]:
    return _variables(view)

  def place_data(self, images: np.ndarray, labels: np.ndarray) -> tuple[jax.Array, jax.Array]:
    return jax.device_put(images, self.device), jax.device_put(labels, self.device)

  def compile(self, steps_fn: StepsFn, state: Any, data: tuple[jax.Array, jax.Array],
              step_keys: Sequence[jax.Array], n: int, batch: int, total_steps: int) -> Steps:
    t = self.configs[0].train
    hparams = {f.split(".")[-1]: jnp.array([float(_get(c, f)) for c in self.configs])
               for f in VMAPPED if f != "seed"}
    keys = jnp.stack(step_keys)

    def one_trial(state, images, labels, indices, key, hp):
      tx = make_optimizer(types.SimpleNamespace(**{**t.to_dict(), **hp}), total_steps)
      return steps_fn(state, images, labels, indices, key, tx=tx)

    compiled = jax.jit(jax.vmap(one_trial, in_axes=(0, None, None, 0, 0, 0)),
                       donate_argnums=0).lower(
        state, *data, jnp.zeros((self.trials, n, batch), jnp.int32), keys, hparams).compile()

    def run(state, indices):
      state, sums = compiled(state, *data, jnp.asarray(indices), keys, hparams)
      return state, np.asarray(sums)

    return run


Program = Strategy | Vmapped


def _get(config: ml_collections.ConfigDict, field: str) -> Any:
  node = config
  for part in field.split("."):
    node = node[part]
  return node


def build(configs: Sequence[ml_collections.ConfigDict]) -> Program:
  """The program for ``configs``: one trial under its parallel strategy, or T vmapped."""
  model = models.build(configs[0].model)
  if len(configs) == 1:
    strategy = parallel.make_strategy(configs[0])
    return Strategy(strategy, parallel.adapt_model(model, strategy))
  trained = model
  if jax.default_backend() == "cpu" and hasattr(model, "conv"):  # CNN, ResNet
    # Why: conv_as_matmul's docstring. Validation runs one trial at a time, where XLA's
    # convolution was faster (6,000 digits: 0.34 s against 0.93 s).
    trained = model.clone(conv=conv_as_matmul)
  return Vmapped(tuple(configs), model, trained, jax.devices()[0])
