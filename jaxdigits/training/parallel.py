"""Data parallelism: one device, ``pmap``, or ``jit`` over a device mesh; multi-host start-up.

Every strategy trains on the same global batch: the epoch's indices are drawn once, for
the whole batch, and each device (and each process) gathers its own rows of it from a
device-resident copy of the training split. The datasets are small (MNIST is 47 MB), so
each device keeps the whole split and only the batch is sharded.

- ``single``: one device, ``jax.jit``.
- ``sharded``: ``jax.jit`` over a 1-D ``Mesh`` ('data'); batch sharded, state replicated,
  the compiler inserts the gradient all-reduce. The default with several devices.
- ``pmap``: replicated state with a leading device axis, ``lax.pmean`` of gradients and of
  BatchNorm statistics. ``jax.pmap`` is in maintenance mode since JAX 0.8 (it now runs on
  jit + shard_map); it is kept for users who ask for it.

Checkpoints always hold the unreplicated state, so they restore under any strategy and
any device count.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxdigits.errors import ConfigError
from jaxdigits.errors import DistributedError

AXIS = "data"




def initialize_distributed(p: ml_collections.ConfigDict) -> None:
  """Joins a multi-process run when ``parallel.distributed`` is set.

  Unset fields come from ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
  ``JAX_PROCESS_ID``, else from JAX's cluster auto-detection (SLURM, Cloud TPU, ...).
  """
  if not p.distributed or jax.distributed.is_initialized():
    return
  env_int = lambda name: int(os.environ[name]) if os.environ.get(name) else None
  address = p.coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
  num_processes = p.num_processes if p.num_processes is not None else env_int("JAX_NUM_PROCESSES")
  process_id = p.process_id if p.process_id is not None else env_int("JAX_PROCESS_ID")
  if address and process_id:  # process 0 hosts the coordinator; the others must reach it
    _wait_for_coordinator(address, p.init_timeout_seconds, process_id, num_processes)
  try:
    jax.distributed.initialize(coordinator_address=address, num_processes=num_processes,
                               process_id=process_id,
                               initialization_timeout=p.init_timeout_seconds)
  except Exception as e:  # pylint: disable=broad-except
    raise DistributedError(
        f"could not join the distributed run (coordinator {address or 'auto-detected'}, "
        f"process {process_id} of {num_processes}) within {p.init_timeout_seconds} s: "
        f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. Check that process "
        f"0 is running and reachable at that address, and that every process was given the "
        f"same coordinator and process count.") from e


def _wait_for_coordinator(address: str, timeout: float, process_id: int,
                          num_processes: int | None) -> None:
  """Waits until the coordinator accepts connections, or raises DistributedError.

  JAX aborts the whole process (a C++ fatal error, no Python exception) when a task
  cannot register with the coordinator, so an unreachable address is caught here first.
  """
  host, _, port = address.rpartition(":")
  deadline = time.monotonic() + timeout
  while True:
    try:
      socket.create_connection((host.strip("[]"), int(port)), timeout=2).close()
      return
    except OSError as e:
      if time.monotonic() >= deadline:
        raise DistributedError(
            f"process {process_id} of {num_processes} could not reach the coordinator at "
            f"{address} within {timeout:g} s ({e}). Start process 0 first (it hosts the "
            f"coordinator), check the address and port are reachable from this host, and "
            f"that every process is given the same --config.parallel.coordinator_address."
        ) from e
      time.sleep(0.5)


def resolve(name: str) -> str:
  """``auto`` → ``sharded`` when several devices are present, else ``single``."""
  if name == "auto":
    return "sharded" if jax.device_count() > 1 else "single"
  return name


@dataclasses.dataclass(frozen=True)
class Strategy:
  """How state, data and train steps are laid out over the devices."""

  name: str
  devices: tuple[Any, ...]

  @property
  def num_devices(self) -> int:
    return len(self.devices)

  @property
  def mesh(self) -> Mesh:
    return Mesh(np.array(self.devices), (AXIS,))

  def _sharding(self, spec: P) -> NamedSharding:
    return NamedSharding(self.mesh, spec)

  def _global(self, local: np.ndarray | jax.Array, spec: P, global_shape=None) -> jax.Array:
    return jax.make_array_from_process_local_data(self._sharding(spec), np.asarray(local),
                                                  global_shape)

  # --- state ----------------------------------------------------------------------------
  def place_state(self, state: Any) -> Any:
    """The unreplicated state as this strategy trains it."""
    if self.name == "single":
      return jax.device_put(state, self.devices[0])
    if self.name == "sharded":
      return jax.tree.map(lambda x: self._global(x, P()), state)
    local = jax.local_devices()
    mesh = Mesh(np.array(local), (AXIS,))
    stack = lambda x: jax.device_put(jnp.broadcast_to(x, (len(local), *jnp.shape(x))),
                                     NamedSharding(mesh, P(AXIS)))
    return jax.tree.map(stack, state)

  def unreplicate(self, state: Any) -> Any:
    """One copy of a ``place_state`` layout, on this process's first device."""
    stacked = self.name == "pmap"
    return jax.tree.map(lambda x: _first_copy(x, stacked), state)

  def checkpoint_view(self, state: Any) -> Any:
    """A ``place_state`` layout as Orbax saves it: one logical copy of the state.

    With several processes the copy is a global array replicated over every device, so
    Orbax's multi-host logic writes it once; with one process it is a plain array.
    """
    one = self.unreplicate(state)
    if jax.process_count() == 1:
      return one
    everywhere = NamedSharding(Mesh(np.array(jax.devices()), (AXIS,)), P())
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(everywhere, np.asarray(x)), one)

  def from_checkpoint(self, restored: Any) -> Any:
    """A state restored into a ``checkpoint_view`` target, laid out for training."""
    return self.place_state(jax.tree.map(lambda x: _first_copy(x, False), restored))

  # --- data -----------------------------------------------------------------------------
  def place_data(self, images: np.ndarray, labels: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """The whole training split on every device."""
    if self.name == "single":
      return jax.device_put(images, self.devices[0]), jax.device_put(labels, self.devices[0])
    if self.name == "sharded":
      return self._global(images, P()), self._global(labels, P())
    return self.place_state((images, labels))

  def place_indices(self, indices: np.ndarray) -> jax.Array:
    """Global batch indices [steps, batch] → this process's rows, laid out per device."""
    if self.name == "single":
      return jnp.asarray(indices)
    steps, batch = indices.shape
    per_process = batch // jax.process_count()
    mine = indices[:, jax.process_index() * per_process:(jax.process_index() + 1) * per_process]
    if self.name == "sharded":
      return self._global(mine, P(None, AXIS), (steps, batch))
    n_local = jax.local_device_count()
    local = mine.reshape(steps, n_local, per_process // n_local).transpose(1, 0, 2)
    mesh = Mesh(np.array(jax.local_devices()), (AXIS,))
    return jax.device_put(local, NamedSharding(mesh, P(AXIS)))

  # --- steps ----------------------------------------------------------------------------
  def compile(self, steps_fn: Callable) -> Callable:
    """Compiles ``steps_fn(state, images, labels, indices, key) -> (state, sums)``."""
    if self.name == "pmap":
      return jax.pmap(steps_fn, axis_name=AXIS, in_axes=(0, 0, 0, 0, None), donate_argnums=0)
    if self.name == "sharded":
      replicated = self._sharding(P())
      return jax.jit(steps_fn, donate_argnums=0, out_shardings=(replicated, replicated))
    return jax.jit(steps_fn, donate_argnums=0)

  def total(self, sums: jax.Array) -> np.ndarray:
    """Metric sums as one host array (pmap returns one identical copy per device)."""
    if self.name == "pmap":
      return np.asarray(sums.addressable_data(0))[0]
    if self.name == "sharded":
      return np.asarray(sums.addressable_data(0))
    return np.asarray(sums)


def _first_copy(x: Any, stacked: bool) -> Any:
  if not isinstance(x, jax.Array):
    return x
  local = x.addressable_data(0)
  return local[0] if stacked else local


def adapt_model(model: Any, strategy: Strategy) -> Any:
  """Under pmap, BatchNorm must average its statistics over the device axis."""
  if strategy.name == "pmap" and hasattr(model, "bn_axis_name"):
    return model.clone(bn_axis_name=AXIS)
  return model


def make_strategy(config: ml_collections.ConfigDict) -> Strategy:
  """The strategy for ``config.parallel.strategy``; checks the batch divides over devices."""
  name = resolve(config.parallel.strategy)
  devices = tuple(jax.devices()) if name != "single" else (jax.local_devices()[0],)
  if name == "single" and jax.process_count() > 1:
    raise ConfigError("config field parallel.strategy: 'single' cannot run on several "
                      "processes; use 'sharded' or 'pmap'")
  batch = config.train.batch_size
  if batch % len(devices):
    raise ConfigError(
        f"config field train.batch_size: the global batch {batch} does not divide over "
        f"{len(devices)} devices ({name} strategy); use a multiple of {len(devices)}, e.g. "
        f"{max(len(devices), batch // len(devices) * len(devices))}")
  return Strategy(name, devices)
