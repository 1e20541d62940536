"""Device-resident epochs against a per-batch host feed, same model, same run.

  python benchmarks/input_pipeline.py [--config=configs/cnn.py] [--variant_steps=48] [--smoke]

1. One full epoch each, side by side: (a) the trainer's path, data on the device and
   ``train.steps_per_call`` unrolled steps per jitted call; (b) a numpy feed, one host batch
   transferred and one jitted step per Python iteration (the Flax-example style).
2. Variants of the device-resident path over ``--variant_steps`` steps: steps per call
   1 / 4 / 16, and a ``lax.scan`` over 16 steps.
Compile time is reported apart from the steady-state figures. Last line:
``device_resident_img_s=… feed_img_s=… ratio=…``. ``--smoke``: 1,024 training digits, a
narrow CNN, 2 steps per call, variants of 1 and 2 steps per call over 8 steps.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
from absl import app, flags
from ml_collections import config_flags

import _smoke
from jaxdigits import models
from jaxdigits.data import pipeline
from jaxdigits.training import engine, state as state_lib

config_flags.DEFINE_config_file("config", "configs/cnn.py", "Training config.")
flags.DEFINE_integer("variant_steps", 48, "Steps timed per variant in part 2.")
flags.DEFINE_bool("smoke", False, "Tiny data and model, short variants: a quick check.")
FLAGS = flags.FLAGS


def _fresh_state(config, steps):
  model = models.build(config.model)
  return state_lib.create_train_state(jax.random.key(0), model,
                                      state_lib.make_optimizer(config.train, steps), (28, 28, 1))


def _time_device(config, images, labels, indices, steps_per_call):
  """Seconds for compile and for running all ``indices`` rows, device-resident."""
  t = config.train
  # The trainer's own unrolled steps, jitted as its single-device strategy does.
  run = jax.jit(engine.train_steps(steps_per_call, max_shift=t.max_shift,
                                   label_smoothing=t.label_smoothing), donate_argnums=0)
  state, key = _fresh_state(config, len(indices)), jax.random.key(1)
  start = time.perf_counter()
  state, sums = run(state, images, labels, indices[:steps_per_call], key)
  float(sums[0])
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for i in range(0, len(indices) - steps_per_call + 1, steps_per_call):
    state, sums = run(state, images, labels, indices[i:i + steps_per_call], key)
    float(sums[0])
  return compile_s, time.perf_counter() - start


def _time_scan(config, images, labels, indices, length):
  t = config.train
  step = functools.partial(engine.train_step, max_shift=t.max_shift,
                           label_smoothing=t.label_smoothing)

  @functools.partial(jax.jit, donate_argnums=0)
  def run(state, idx, key):
    def body(s, i):
      return step(s, images[i], labels[i], key)
    return jax.lax.scan(body, state, idx)

  state, key = _fresh_state(config, len(indices)), jax.random.key(1)
  start = time.perf_counter()
  state, sums = run(state, indices[:length], key)
  float(sums[-1, 0])
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for i in range(0, len(indices) - length + 1, length):
    state, sums = run(state, indices[i:i + length], key)
    float(sums[-1, 0])
  return compile_s, time.perf_counter() - start


def _time_feed(config, split, indices):
  """A per-batch host feed: numpy gather, transfer, one jitted step per iteration."""
  t = config.train
  step = jax.jit(functools.partial(engine.train_step, max_shift=t.max_shift,
                                   label_smoothing=t.label_smoothing), donate_argnums=0)
  state, key = _fresh_state(config, len(indices)), jax.random.key(1)
  start = time.perf_counter()
  state, sums = step(state, split.images[indices[0]], split.labels[indices[0]], key)
  float(sums[0])
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for idx in indices:
    state, sums = step(state, split.images[idx], split.labels[idx], key)
  float(sums[0])
  return compile_s, time.perf_counter() - start


def main(_):
  config = _smoke.shrink(FLAGS.config, train__steps_per_call=2) if FLAGS.smoke else FLAGS.config
  batch = config.train.batch_size
  split = pipeline.load_splits(config.data).train
  images, labels = jnp.asarray(split.images), jnp.asarray(split.labels)
  epoch = pipeline.epoch_indices(jax.random.key(0), len(split), batch)
  k = config.train.steps_per_call
  usable = epoch[:len(epoch) // k * k]
  print(f"backend={jax.default_backend()} devices={jax.device_count()} model={config.model.name} "
        f"batch={batch} steps/epoch={len(epoch)} (timed: {len(usable)})")

  dev_compile, dev_s = _time_device(config, images, labels, usable, k)
  feed_compile, feed_s = _time_feed(config, split, usable)
  n_img = len(usable) * batch
  print(f"{'path':34s} {'compile s':>9s} {'s/epoch':>8s} {'img/s':>8s}")
  _row(f"device-resident, {k} steps/call", dev_compile, dev_s, n_img / dev_s)
  _row("host feed, 1 step/iteration", feed_compile, feed_s, n_img / feed_s)

  steps = min(FLAGS.variant_steps, len(epoch))
  per_calls, scan = ((1, 2), 2) if FLAGS.smoke else ((1, 4, 16), 16)
  sub = epoch[:steps]
  print(f"\nvariants over {steps} steps")
  print(f"{'variant':34s} {'compile s':>9s} {'ms/step':>8s} {'img/s':>8s}")
  for per_call in per_calls:
    c, s = _time_device(config, images, labels, sub, per_call)
    _row(f"unrolled, {per_call} steps/call", c, 1e3 * s / steps, steps * batch / s)
  c, s = _time_scan(config, images, labels, jnp.asarray(sub), scan)
  _row(f"lax.scan, {scan} steps/call", c, 1e3 * s / steps, steps * batch / s)
  print(f"device_resident_img_s={n_img / dev_s:.0f} feed_img_s={n_img / feed_s:.0f} "
        f"ratio={feed_s / dev_s:.2f}")


def _row(name: str, compile_s: float, time_per: float, images_per_s: float) -> None:
  print(f"{name:34s} {compile_s:9.1f} {time_per:8.1f} {images_per_s:8.0f}")


if __name__ == "__main__":
  app.run(main)
