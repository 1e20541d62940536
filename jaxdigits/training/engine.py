"""The run engine: a pure jitted train step, and the one epoch loop every training runs through.

``train_and_evaluate(config, workdir)`` trains any config: a Flax model under its parallel
strategy, or a classic model's fit (``classic_fit``). ``train_trials`` runs the one epoch
loop over T >= 1 trials (a ``programs`` program: one trial under single / pmap / sharded,
or T vmapped sweep trials); the epoch plan, validation, checkpoint cadence, the metrics
writer and the final record (``jaxdigits.records``) happen there once, for every kind.
Every run claims its workdir first (``training.workdir``: the config guard and the lock).
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxdigits import checkpoints, config as config_lib, models, records
from jaxdigits.data import augment, pipeline
from jaxdigits.models import features as features_lib
from jaxdigits.models import forward
from jaxdigits.training import classic_fit, parallel, programs
from jaxdigits.training import workdir as workdir_lib
from jaxdigits.training.metrics_writer import MetricsWriter, Progress
from jaxdigits.training.state import TrainState, make_optimizer


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
  state = state.replace(step=state.step + 1,
                        params=optax.apply_updates(state.params, param_updates),
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
                       evaluate_test: bool = True,
                       feature_cache: features_lib.FeatureCache | None = None) -> dict[str, Any]:
  """Trains (or fits) ``config`` in ``workdir``, resuming what is there; the final record.

  Each epoch ends with validation accuracy and, every ``checkpoint.every_epochs``, a
  checkpoint. The test split is evaluated once, on the checkpoint best on validation, and
  not at all with ``evaluate_test=False`` (sweep trials: selection must never see test).
  ``feature_cache`` shares classic models' features between fits on the same splits.

  Raises:
    CheckpointError: ``workdir`` holds a run of another config, or another run holds it.
  """
  config = config_lib.validate(config)
  if config.model.name in models.CLASSIC:
    with workdir_lib.claim(workdir, config) as claimed:
      return classic_fit.fit(config, claimed, evaluate_test=evaluate_test, cache=feature_cache)
  return train_trials([config], [workdir], evaluate_test=evaluate_test)[0]


# (epoch just finished, 1-based; each trial's validation accuracy, None once stopped) →
# which trials stop now: a sweep's pruner.
ShouldStop = Callable[[int, list[float | None]], Sequence[bool]]


def train_trials(configs: Sequence[ml_collections.ConfigDict],
                 workdirs: Sequence[str | Path], *, evaluate_test: bool = True,
                 should_stop: ShouldStop | None = None) -> list[dict[str, Any]]:
  """Trains Flax trials that differ at most in ``programs.VMAPPED`` fields; their finals.

  One trial runs under its parallel strategy; several run as one vmapped program on one
  device, each ending where training it alone would (up to float rounding), each with its
  own workdir, checkpoints and metrics. ``should_stop`` is asked after each epoch: a trial
  it stops is checkpointed and given its final record at once (its best epoch so far); in
  a vmapped group the others go on unchanged (the stopped lane is computed but unused),
  and the loop ends when every trial has stopped.
  """
  configs = [config_lib.validate(c) for c in configs]
  parallel.initialize_distributed(configs[0].parallel)
  for config, workdir in zip(configs, workdirs):  # every trial before any is touched
    workdir_lib.check(workdir, config)
  program = programs.build(configs)
  with contextlib.ExitStack() as stack:
    lead = jax.process_index() == 0  # its lock stands for every process of the run
    claimed = [stack.enter_context(workdir_lib.claim(w, c, lock=lead))
               for c, w in zip(configs, workdirs)]
    ckpts = [checkpoints.Checkpoints(w / "checkpoints", c) for c, w in zip(configs, claimed)]
    for c in ckpts:
      stack.callback(c.close)
    if lead:
      _report_set_aside(ckpts)
    return _run(program, configs, claimed, ckpts, evaluate_test, should_stop)


def _run(program: programs.Program, configs: Sequence[ml_collections.ConfigDict],
         workdirs: Sequence[Path], ckpts: Sequence[checkpoints.Checkpoints],
         evaluate_test: bool, should_stop: ShouldStop | None = None) -> list[dict[str, Any]]:
  """The epoch loop, then each trial's final record."""
  t, every = configs[0].train, configs[0].checkpoint.every_epochs
  lead = jax.process_index() == 0
  splits = pipeline.load_splits(configs[0].data)
  steps_per_epoch = len(splits.train) // t.batch_size
  total_steps = steps_per_epoch * t.num_epochs
  keys = [jax.random.split(jax.random.key(c.seed), 3) for c in configs]
  setup_start = time.perf_counter()
  state, start_epoch, steps, compile_seconds = _start(program, t, ckpts, splits, keys,
                                                      total_steps)
  train_seconds = time.perf_counter() - setup_start
  progress = Progress(total_steps=total_steps, bar=configs[0].progress_bar, enabled=lead,
                      initial_step=min(start_epoch, t.num_epochs) * steps_per_epoch)
  label = (lambda w: w.name) if program.trials > 1 else (lambda w: "")
  writers = [MetricsWriter(w, num_epochs=t.num_epochs, progress=progress, label=label(w),
                           enabled=lead, resume_epoch=start_epoch) for w in workdirs]
  stopped_at = [None] * program.trials  # the epoch each trial was stopped after
  try:
    for epoch in range(start_epoch, t.num_epochs):
      state, totals, seconds = _train_epoch(program, steps, state, [k[1] for k in keys], epoch,
                                            len(splits.train), t.batch_size, progress)
      train_seconds += seconds
      vals = _validate(program, state, writers, stopped_at, splits.validation, t, epoch,
                       steps_per_epoch, totals, seconds)
      stops = should_stop(epoch + 1, vals) if should_stop else [False] * program.trials
      _checkpoint(program, state, ckpts, stopped_at, stops, vals, epoch, t.num_epochs, every)
      if all(s is not None for s in stopped_at):
        break
    progress.close()
    finals = []
    for j, (ckpt, writer) in enumerate(zip(ckpts, writers)):
      ckpt.wait()
      finals.append(_final(program, ckpt, program.view(state, j), splits, t, evaluate_test,
                           train_seconds=train_seconds, compile_seconds=compile_seconds))
      writer.write((stopped_at[j] or t.num_epochs) * steps_per_epoch, finals[-1])
  finally:
    progress.close()
    for writer in writers:
      writer.close()
  return finals


def _validate(program: programs.Program, state: Any, writers: Sequence[MetricsWriter],
              stopped_at: list[int | None], validation: Any, t: ml_collections.ConfigDict,
              epoch: int, steps_per_epoch: int, totals: Any, seconds: float) -> list[float | None]:
  """Each running trial's validation accuracy after ``epoch``, written as its epoch record."""
  seen = steps_per_epoch * t.batch_size
  vals = [None] * program.trials
  for j, writer in enumerate(writers):
    if stopped_at[j] is None:
      vals[j] = _accuracy(program, program.variables(state, j), validation, t)
      writer.write((epoch + 1) * steps_per_epoch, records.epoch_record(
          epoch + 1, train_loss=totals[j, 0] / seen, train_accuracy=totals[j, 1] / seen,
          val_accuracy=vals[j], epoch_seconds=seconds, images=seen * program.trials,
          trials=program.trials))
  return vals


def _checkpoint(program: programs.Program, state: Any, ckpts: Sequence[checkpoints.Checkpoints],
                stopped_at: list[int | None], stops: Sequence[bool], vals: list[float | None],
                epoch: int, num_epochs: int, every: int) -> None:
  """Saves the running trials due a checkpoint after ``epoch``; marks the stopped ones."""
  for j, ckpt in enumerate(ckpts):
    if stopped_at[j] is not None:
      continue
    # Written after the record: a run killed in between re-runs the epoch, and the writer
    # drops the old record as it resumes (records.keep_through), so the epoch is neither
    # lost nor written twice. A stopped trial keeps its last epoch.
    due = (epoch + 1) % every == 0 or epoch + 1 == num_epochs or stops[j]
    if due and (ckpt.latest_step() or 0) < epoch + 1:  # a killed group may have saved some
      ckpt.save(epoch + 1, program.view(state, j), {"val_accuracy": vals[j]})
    if stops[j]:
      stopped_at[j] = epoch + 1


def _report_set_aside(ckpts: Sequence[checkpoints.Checkpoints]) -> None:
  """One line per damaged checkpoint a resume passed over, and where it resumes instead."""
  start = min(c.latest_step() or 0 for c in ckpts)
  where = (f"resuming from the checkpoint of epoch {start}, the newest good one" if start else
           "no good checkpoint is left, so training starts from epoch 1")
  for c in ckpts:
    for error, moved in c.set_aside:
      print(f"jaxdigits: {error.reason}; set it aside as {moved}; {where}", file=sys.stderr,
            flush=True)


def _start(program: programs.Program, t: ml_collections.ConfigDict,
           ckpts: Sequence[checkpoints.Checkpoints], splits: pipeline.Splits,
           keys: list[jax.Array], total_steps: int) -> tuple[Any, int, dict[int, Any], float]:
  """The trials' state (restored where the slowest stopped), with the training split on the
  devices: (state, first epoch to run, compiled steps, seconds spent compiling)."""
  # One optimizer for the state's structure; a vmapped program passes each trial's
  # hyperparameters to its steps as traced values.
  state = program.init([k[0] for k in keys], make_optimizer(t, total_steps),
                       splits.train.images.shape[1:])
  start_epoch = min(c.latest_step() or 0 for c in ckpts)
  if start_epoch:
    state = program.from_views([c.restore(start_epoch, program.view(state, j))
                                for j, c in enumerate(ckpts)])
  if start_epoch >= t.num_epochs:
    return state, start_epoch, {}, 0.0
  data = program.place_data(splits.train.images, splits.train.labels)
  compile_start = time.perf_counter()
  steps = _compile(program, t, state, data, [k[2] for k in keys], total_steps,
                   len(splits.train) // t.batch_size)
  return state, start_epoch, steps, time.perf_counter() - compile_start


def _compile(program: programs.Program, t: ml_collections.ConfigDict, state: Any,
             data: Any, step_keys: list[jax.Array], total_steps: int,
             steps_per_epoch: int) -> dict[int, programs.Steps]:
  """The epoch plan's programs, by steps per call, compiled ahead of the first step so that
  compilation (which dominates a short run on a GPU) is reported apart from the steps."""
  chunk = min(t.steps_per_call, steps_per_epoch)
  opts = dict(max_shift=t.max_shift, label_smoothing=t.label_smoothing,
              max_rotation=t.max_rotation, max_scale=t.max_scale, axis_name=program.axis_name)
  sizes = {n for _, n in epoch_plan(steps_per_epoch, chunk)}
  return {n: program.compile(train_steps(n, **opts), state, data, step_keys, n, t.batch_size,
                             total_steps) for n in sorted(sizes, reverse=True)}


def _train_epoch(program: programs.Program, steps: dict[int, programs.Steps], state: Any,
                 data_keys: list[jax.Array], epoch: int, num_examples: int, batch: int,
                 progress: Progress) -> tuple[Any, np.ndarray, float]:
  """One epoch of every trial, each on its own shuffle: (state, sums [T, 2], seconds)."""
  start = time.perf_counter()
  indices = np.stack([pipeline.epoch_indices(k, num_examples, batch, epoch) for k in data_keys])
  totals = np.zeros((program.trials, 2))
  for i, n in epoch_plan(indices.shape[1], max(steps)):
    # The sums come back to the host on each call, which blocks: it bounds the work in
    # flight (many undispatched collective steps have deadlocked XLA:CPU) and keeps the
    # ETA honest.
    state, sums = steps[n](state, indices[:, i:i + n])
    totals += sums
    progress.advance(n, loss=float(sums[:, 0].mean()) / (n * batch))
  return state, totals, time.perf_counter() - start


def _accuracy(program: programs.Program, variables: Any, split: pipeline.Split,
              t: ml_collections.ConfigDict) -> float:
  return forward.accuracy(forward.batched_logits(program.model.apply, variables, split.images,
                                                 t.eval_batch_size), split.labels)


def _final(program: programs.Program, ckpt: checkpoints.Checkpoints, view: Any,
           splits: pipeline.Splits, t: ml_collections.ConfigDict, evaluate_test: bool,
           **seconds: float) -> dict[str, Any]:
  """A trial's final record: its checkpoint best on validation, and that one's test score."""
  best = ckpt.best_step()
  val = ckpt.metrics(best).get("val_accuracy")
  fields = {}
  if evaluate_test or val is None:
    variables = program.view_variables(ckpt.restore(best, view))
    val = _accuracy(program, variables, splits.validation, t)
    if evaluate_test:
      fields["test_accuracy"] = _accuracy(program, variables, splits.test, t)
  return records.final_record(
      kind="flax", best_epoch=best, val_accuracy=val, train_examples=len(splits.train),
      validation_examples=len(splits.validation), test_examples=len(splits.test),
      strategy=program.name, devices=program.num_devices, processes=jax.process_count(),
      trials=program.trials, **seconds, **fields)
