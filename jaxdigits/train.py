"""Training: TrainState, a pure jitted train step, and ``train_and_evaluate``."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from jaxdigits import checkpoints, config as config_lib, evaluate, models
from jaxdigits.data import pipeline
from jaxdigits.metrics_writer import MetricsWriter
from jaxdigits.state import TrainState, create_train_state, make_optimizer


def random_shift(key: jax.Array, images: jax.Array, max_shift: int) -> jax.Array:
  """Translates each image by up to ``max_shift`` pixels (zero fill)."""
  b, h, w, _ = images.shape
  m = max_shift
  padded = jnp.pad(images, ((0, 0), (m, m), (m, m), (0, 0)))
  offsets = jax.random.randint(key, (b, 2), 0, 2 * m + 1)
  crop = lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, im.shape[-1]))
  return jax.vmap(crop)(padded, offsets)


def train_step(state: TrainState, images: jax.Array, labels: jax.Array, key: jax.Array, *,
               max_shift: int, label_smoothing: float) -> tuple[TrainState, jax.Array]:
  """One SGD step on a uint8 batch; returns the new state and [loss_sum, correct]."""
  aug_key, dropout_key = jax.random.split(jax.random.fold_in(key, state.step))
  x = pipeline.normalize(images)
  if max_shift:
    x = random_shift(aug_key, x, max_shift)
  targets = optax.smooth_labels(jax.nn.one_hot(labels, 10), label_smoothing)

  def loss_fn(params):
    logits, updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, x, train=True,
        rngs={"dropout": dropout_key}, mutable=["batch_stats"])
    return optax.softmax_cross_entropy(logits, targets).mean(), (logits, updates)

  (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=updates["batch_stats"])
  correct = jnp.sum(jnp.argmax(logits, -1) == labels)
  return state, jnp.stack([loss * labels.shape[0], correct.astype(jnp.float32)])


def make_train_steps(num_steps: int, *, max_shift: int, label_smoothing: float) -> Callable:
  """A jitted function running ``num_steps`` train steps, unrolled, on device-resident data.

  (state, images, labels, indices [num_steps, batch], key) → (state, [loss_sum, correct]).
  Unrolled rather than a ``lax.scan``: XLA:CPU ran convolution gradients inside while
  loops ~11x slower, while chunks of unrolled steps run at full speed and cut dispatch.
  """
  step = functools.partial(train_step, max_shift=max_shift, label_smoothing=label_smoothing)

  @functools.partial(jax.jit, donate_argnums=0)
  def run(state, images, labels, indices, key):
    totals = jnp.zeros(2)
    for i in range(num_steps):
      state, sums = step(state, images[indices[i]], labels[indices[i]], key)
      totals += sums
    return state, totals

  return run


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
  """Trains ``config`` in ``workdir`` (resuming what is there) and returns the final metrics.

  Each epoch ends with validation accuracy and, every ``checkpoint.every_epochs``, a
  checkpoint. The test split is evaluated once, on the checkpoint best on validation.
  """
  config = config_lib.validate(config)
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  ckpts = checkpoints.Checkpoints(workdir / "checkpoints", config)
  t = config.train

  splits = pipeline.load_splits(config.data)
  model = models.build(config.model)
  steps_per_epoch = len(splits.train) // t.batch_size
  total_steps = steps_per_epoch * t.num_epochs
  init_key, data_key, step_key = jax.random.split(jax.random.key(config.seed), 3)
  state = create_train_state(init_key, model, make_optimizer(t, total_steps),
                             splits.train.images.shape[1:])
  start_epoch = ckpts.latest_step() or 0
  if start_epoch:
    state = ckpts.restore(start_epoch, state)

  images, labels = pipeline.to_device(splits.train)
  opts = dict(max_shift=t.max_shift, label_smoothing=t.label_smoothing)
  chunk = min(t.steps_per_call, steps_per_epoch)
  run_chunk, run_one = make_train_steps(chunk, **opts), make_train_steps(1, **opts)
  variables = lambda s: {"params": s.params, "batch_stats": s.batch_stats}
  writer = MetricsWriter(workdir, total_steps=total_steps,
                         initial_step=min(start_epoch, t.num_epochs) * steps_per_epoch,
                         progress_bar=config.progress_bar, enabled=jax.process_index() == 0)
  try:
    for epoch in range(start_epoch, t.num_epochs):
      start = time.perf_counter()
      indices = pipeline.epoch_indices(jax.random.fold_in(data_key, epoch), len(splits.train),
                                       t.batch_size)
      totals = jnp.zeros(2)
      for i in range(0, steps_per_epoch - chunk + 1, chunk):
        state, sums = run_chunk(state, images, labels, indices[i:i + chunk], step_key)
        totals += sums
        # Blocking per call bounds the work in flight and makes the ETA honest.
        writer.advance(chunk, loss=float(sums[0]) / (chunk * t.batch_size))
      for i in range(steps_per_epoch - steps_per_epoch % chunk, steps_per_epoch):
        state, sums = run_one(state, images, labels, indices[i:i + 1], step_key)
        totals += sums
        writer.advance(1)
      loss_sum, correct = np.asarray(totals)
      seen = steps_per_epoch * t.batch_size
      train_seconds = time.perf_counter() - start
      val_acc = evaluate.accuracy(
          evaluate.predict_logits(state.apply_fn, variables(state), splits.validation.images,
                                  t.eval_batch_size), splits.validation.labels)
      record = {"epoch": epoch + 1, "train_loss": float(loss_sum / seen),
                "train_accuracy": float(correct / seen), "val_accuracy": val_acc,
                "epoch_seconds": train_seconds, "images_per_second": seen / train_seconds}
      writer.write(int(state.step), record)
      if (epoch + 1) % config.checkpoint.every_epochs == 0 or epoch + 1 == t.num_epochs:
        ckpts.save(epoch + 1, state, {"val_accuracy": val_acc})
    ckpts.wait()

    best = ckpts.best_step()
    best_state = ckpts.restore(best, state) if best is not None else state
    val_logits = evaluate.predict_logits(best_state.apply_fn, variables(best_state),
                                         splits.validation.images, t.eval_batch_size)
    test_logits = evaluate.predict_logits(best_state.apply_fn, variables(best_state),
                                          splits.test.images, t.eval_batch_size)
    final = {"best_epoch": best, "val_accuracy": evaluate.accuracy(val_logits,
                                                                    splits.validation.labels),
             "test_accuracy": evaluate.accuracy(test_logits, splits.test.labels),
             "train_examples": len(splits.train), "validation_examples": len(splits.validation),
             "test_examples": len(splits.test)}
    writer.write(int(state.step), final)
  finally:
    writer.close()
    ckpts.close()
  return final
