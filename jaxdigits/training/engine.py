"""Training: TrainState, a pure jitted train step, and ``train_and_evaluate``."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxdigits import checkpoints, config as config_lib, models
from jaxdigits.data import augment
from jaxdigits.analysis import evaluate
from jaxdigits.training import parallel
from jaxdigits.inference import predictor as predict
from jaxdigits.data import pipeline
from jaxdigits.training.metrics_writer import MetricsWriter
from jaxdigits.training.state import TrainState, create_train_state, make_optimizer


def train_step(state: TrainState, images: jax.Array, labels: jax.Array, key: jax.Array, *,
               max_shift: int, label_smoothing: float, max_rotation: float = 0.0,
               max_scale: float = 0.0, axis_name: str | None = None,
               tx: optax.GradientTransformation | None = None) -> tuple[TrainState, jax.Array]:
  """One optimizer step on a uint8 batch; returns the new state and [loss_sum, correct].

  With ``axis_name`` (pmap) the batch is this device's shard: gradients are averaged and
  metric sums added over the axis. ``tx`` replaces ``state.tx``: vmapped sweeps build it
  from traced hyperparameters.
  """
  aug_key, dropout_key = jax.random.split(jax.random.fold_in(key, state.step))
  x = pipeline.normalize(images)
  if max_rotation or max_scale:  # a key of its own; runs without it keep their old streams
    x = augment.random_affine(jax.random.fold_in(aug_key, 1), x, max_rotation, max_scale,
                              axis_name)
  if max_shift:
    x = augment.random_shift(aug_key, x, max_shift, axis_name)
  if axis_name is not None:  # one dropout stream per device, not the same mask everywhere
    dropout_key = jax.random.fold_in(dropout_key, jax.lax.axis_index(axis_name))
  targets = optax.smooth_labels(jax.nn.one_hot(labels, 10), label_smoothing)

  def loss_fn(params):
    logits, updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, x, train=True,
        rngs={"dropout": dropout_key}, mutable=["batch_stats"])
    return optax.softmax_cross_entropy(logits, targets).mean(), (logits, updates)

  (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  correct = jnp.sum(jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  sums = jnp.stack([loss * labels.shape[0], correct])
  if axis_name is not None:
    grads = jax.lax.pmean(grads, axis_name)
    sums = jax.lax.psum(sums, axis_name)
  tx = state.tx if tx is None else tx
  param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
  state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, param_updates),
                        opt_state=opt_state, batch_stats=updates["batch_stats"])
  return state, sums


def train_steps(num_steps: int, *, max_shift: int, label_smoothing: float,
                max_rotation: float = 0.0, max_scale: float = 0.0,
                axis_name: str | None = None) -> Callable:
  """``num_steps`` train steps, unrolled, on device-resident data (not yet compiled).

  (state, images, labels, indices [num_steps, batch], key) → (state, [loss_sum, correct]).
  Unrolled rather than a ``lax.scan``: XLA:CPU ran convolution gradients inside while
  loops ~9x slower (benchmarks/input_pipeline.py), while unrolled steps run at full speed.
  """
  step = functools.partial(train_step, max_shift=max_shift, label_smoothing=label_smoothing,
                           max_rotation=max_rotation, max_scale=max_scale, axis_name=axis_name)

  def run(state, images, labels, indices, key, tx=None):
    totals = jnp.zeros(2)
    for i in range(num_steps):
      state, sums = step(state, images[indices[i]], labels[indices[i]], key, tx=tx)
      totals += sums
    return state, totals

  return run


def epoch_plan(steps_per_epoch: int, chunk: int) -> list[tuple[int, int]]:
  """(first step, number of steps) per call: whole chunks, then single steps for the rest,
  so an epoch needs two compiled programs whatever its length."""
  plan = [(i, chunk) for i in range(0, steps_per_epoch - chunk + 1, chunk)]
  return plan + [(i, 1) for i in range(len(plan) * chunk, steps_per_epoch)]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path, *,
                       evaluate_test: bool = True) -> dict[str, Any]:
  """Trains ``config`` in ``workdir`` (resuming what is there) and returns the final metrics.

  Each epoch ends with validation accuracy and, every ``checkpoint.every_epochs``, a
  checkpoint. The test split is evaluated once, on the checkpoint best on validation, and
  not at all with ``evaluate_test=False`` (sweep trials: selection must never see test).
  """
  config = config_lib.validate(config)
  if Path(workdir).is_file():  # every kind of run would fail to mkdir it, with a traceback
    raise checkpoints.CheckpointError(f"--workdir={workdir}: is a file; give a folder (a new "
                                      "one, or a run to resume)")
  if config.model.name in models.CLASSIC:
    from jaxdigits.training import classic_fit as classic  # pylint: disable=g-import-not-at-top
    return classic.fit_and_evaluate(config, workdir, evaluate_test=evaluate_test)
  parallel.initialize_distributed(config.parallel)
  strategy = parallel.make_strategy(config)
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  ckpts = checkpoints.Checkpoints(workdir / "checkpoints", config)
  t = config.train

  splits = pipeline.load_splits(config.data)
  model = parallel.adapt_model(models.build(config.model), strategy)
  steps_per_epoch = len(splits.train) // t.batch_size
  total_steps = steps_per_epoch * t.num_epochs
  init_key, data_key, step_key = jax.random.split(jax.random.key(config.seed), 3)
  setup_start = time.perf_counter()
  state = strategy.place_state(create_train_state(
      init_key, model, make_optimizer(t, total_steps), splits.train.images.shape[1:]))
  start_epoch = ckpts.latest_step() or 0
  if start_epoch:
    state = strategy.from_checkpoint(
        ckpts.restore(start_epoch, strategy.checkpoint_view(state)))

  images, labels = strategy.place_data(splits.train.images, splits.train.labels)
  axis = parallel.AXIS if strategy.name == "pmap" else None
  opts = dict(max_shift=t.max_shift, label_smoothing=t.label_smoothing,
              max_rotation=t.max_rotation, max_scale=t.max_scale, axis_name=axis)
  chunk = min(t.steps_per_call, steps_per_epoch)
  run_chunk = strategy.compile(train_steps(chunk, **opts))
  run_one = strategy.compile(train_steps(1, **opts))
  compile_seconds = 0.0
  if start_epoch < t.num_epochs:
    # Compiled ahead of the first step so that compilation, which dominates a short run
    # on a GPU, is reported apart from the steps.
    compile_start = time.perf_counter()
    lower = lambda fn, n: fn.lower(state, images, labels, strategy.place_indices(
        np.zeros((n, t.batch_size), np.int32)), step_key).compile()
    run_chunk = lower(run_chunk, chunk)
    if steps_per_epoch % chunk:
      run_one = lower(run_one, 1)
    compile_seconds = time.perf_counter() - compile_start
  variables = lambda s: {"params": s.params, "batch_stats": s.batch_stats}
  train_seconds = time.perf_counter() - setup_start
  writer = MetricsWriter(workdir, total_steps=total_steps,
                         initial_step=min(start_epoch, t.num_epochs) * steps_per_epoch,
                         progress_bar=config.progress_bar, enabled=jax.process_index() == 0)
  try:
    for epoch in range(start_epoch, t.num_epochs):
      start = time.perf_counter()
      indices = pipeline.epoch_indices(jax.random.fold_in(data_key, epoch), len(splits.train),
                                       t.batch_size)
      totals = np.zeros(2)
      for i, n in epoch_plan(steps_per_epoch, chunk):
        run = run_chunk if n == chunk else run_one
        state, sums = run(state, images, labels, strategy.place_indices(indices[i:i + n]),
                          step_key)
        # Reading the sums blocks on each call: it bounds the work in flight (many
        # undispatched collective steps have deadlocked XLA:CPU) and keeps the ETA honest.
        sums = strategy.total(sums)
        totals += sums
        writer.advance(n, loss=float(sums[0]) / (n * t.batch_size))
      seen = steps_per_epoch * t.batch_size
      epoch_seconds = time.perf_counter() - start
      train_seconds += epoch_seconds
      val_acc = evaluate.accuracy(
          predict.batched_logits(model.apply, variables(strategy.unreplicate(state)),
                                  splits.validation.images, t.eval_batch_size),
          splits.validation.labels)
      record = {"epoch": epoch + 1, "train_loss": float(totals[0] / seen),
                "train_accuracy": float(totals[1] / seen), "val_accuracy": val_acc,
                "epoch_seconds": epoch_seconds, "images_per_second": seen / epoch_seconds}
      writer.write((epoch + 1) * steps_per_epoch, record)
      if (epoch + 1) % config.checkpoint.every_epochs == 0 or epoch + 1 == t.num_epochs:
        ckpts.save(epoch + 1, strategy.checkpoint_view(state), {"val_accuracy": val_acc})
    ckpts.wait()

    best = ckpts.best_step()
    if best is not None:
      state = strategy.from_checkpoint(ckpts.restore(best, strategy.checkpoint_view(state)))
    best_vars = variables(strategy.unreplicate(state))
    logits_of = lambda split: predict.batched_logits(model.apply, best_vars, split.images,
                                                    t.eval_batch_size)
    final = {"best_epoch": best,
             "val_accuracy": evaluate.accuracy(logits_of(splits.validation),
                                               splits.validation.labels),
             "train_examples": len(splits.train), "validation_examples": len(splits.validation),
             "test_examples": len(splits.test), "strategy": strategy.name,
             "devices": strategy.num_devices, "processes": jax.process_count(),
             # This invocation's state set-up, device transfer, compilation and train
             # steps: not data loading, validation or checkpoints (benchmarks/time_to_99.py).
             "train_seconds": train_seconds, "compile_seconds": compile_seconds}
    if evaluate_test:
      final["test_accuracy"] = evaluate.accuracy(logits_of(splits.test), splits.test.labels)
    writer.write(total_steps, final)
  finally:
    writer.close()
    ckpts.close()
  return final
