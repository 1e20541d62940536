"""Training images/s per strategy on 1, 2 and 4 devices.

  python benchmarks/parallel.py [--devices=1,2,4] [--steps=48] [--real] [--smoke]

Without ``--real``, devices are simulated on the CPU (XLA_FLAGS), one child process per
device count: on a CPU these share the same cores, so the figures show the strategies'
overhead, not a speed-up. With ``--real`` the available accelerators are used as they are.
Each figure is steady-state (the first, compiling call excluded), the default CNN config,
global batch ``train.batch_size`` (128). Last line: ``<strategy>_<devices>=img/s …``.
``--smoke``: 1 and 2 devices, 4 timed steps of a narrow CNN on 1,024 digits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import app, flags

import _smoke

flags.DEFINE_string("devices", "1,2,4", "Device counts to simulate.")
flags.DEFINE_integer("steps", 48, "Timed train steps per strategy.")
flags.DEFINE_integer("batch_size", 128, "Global batch.")
flags.DEFINE_bool("real", False, "Use the real devices instead of simulated CPU devices.")
flags.DEFINE_bool("smoke", False, "1 and 2 devices, a few steps of a narrow CNN: a quick check.")
flags.DEFINE_integer("child", 0, "Internal: run as the child for this many devices.")
FLAGS = flags.FLAGS


def measure(strategy_name: str, steps: int, batch: int, smoke: bool) -> float:
  # Imported here: only the child, started with its device count in XLA_FLAGS, needs JAX.
  # pylint: disable=g-import-not-at-top
  import jax
  from jaxdigits import models
  from jaxdigits.config import load_file
  from jaxdigits.data import pipeline
  from jaxdigits.training import engine, parallel, state as state_lib
  # pylint: enable=g-import-not-at-top
  config = load_file(os.path.join(os.path.dirname(__file__), "..", "configs", "cnn.py"))
  if smoke:
    _smoke.shrink(config)
  config.train.batch_size = batch
  config.parallel.strategy = strategy_name
  strategy = parallel.make_strategy(config)
  split = pipeline.load_tfds("mnist", "train", raw_dir=config.data.raw_dir,
                             data_dir=config.data.tfds_dir,
                             stop=config.data.train_limit or 54_000)
  model = parallel.adapt_model(models.build(config.model), strategy)
  state = strategy.place_state(state_lib.create_train_state(
      jax.random.key(0), model, state_lib.make_optimizer(config.train, 1000), (28, 28, 1)))
  images, labels = strategy.place_data(split.images, split.labels)
  k = config.train.steps_per_call
  run = strategy.compile(engine.train_steps(
      k, max_shift=config.train.max_shift, label_smoothing=0.0,
      axis_name=parallel.AXIS if strategy.name == "pmap" else None))
  indices = pipeline.epoch_indices(jax.random.key(1), len(split), batch)
  key = jax.random.key(2)
  state, sums = run(state, images, labels, strategy.place_indices(indices[:k]), key)
  strategy.total(sums)
  start = time.perf_counter()
  for i in range(k, k + steps, k):
    state, sums = run(state, images, labels, strategy.place_indices(indices[i:i + k]), key)
    strategy.total(sums)  # block per call, as the trainer does
  return steps // k * k * batch / (time.perf_counter() - start)


def main(_):
  if FLAGS.child:
    import jax  # pylint: disable=g-import-not-at-top
    names = ["single"] if FLAGS.child == 1 else ["pmap", "sharded"]
    out = {"backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind}
    for name in names:
      out[f"{name}_{FLAGS.child}"] = measure(name, FLAGS.steps, FLAGS.batch_size, FLAGS.smoke)
    print("RESULT " + json.dumps(out))
    return
  results, info = {}, {}
  devices, steps = ("1,2", 4) if FLAGS.smoke else (FLAGS.devices, FLAGS.steps)
  for n in [int(d) for d in devices.split(",")]:
    env = dict(os.environ)
    if not FLAGS.real:
      env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
      env["JAX_PLATFORMS"] = "cpu"
    elif n != 1:
      env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(n))
    child = subprocess.run([sys.executable, __file__, f"--child={n}", f"--steps={steps}",
                            f"--batch_size={FLAGS.batch_size}", f"--smoke={FLAGS.smoke}"],
                           env=env, capture_output=True, text=True, timeout=900, check=False)
    if child.returncode:
      sys.exit(f"the {n}-device child failed (exit {child.returncode}):\n{child.stderr[-3000:]}")
    line = json.loads(next(l for l in child.stdout.splitlines() if l.startswith("RESULT "))[7:])
    info = {k: line.pop(k) for k in ("backend", "device_kind")}
    results.update(line)
  print(f"backend={info['backend']} device={info['device_kind']} "
        f"{'real' if FLAGS.real else 'simulated'} devices, global batch {FLAGS.batch_size}")
  print(f"{'strategy':10s} {'devices':>7s} {'img/s':>8s}")
  for key, value in results.items():
    name, n = key.rsplit("_", 1)
    print(f"{name:10s} {n:>7s} {value:8.0f}")
  print(" ".join(f"{k}={v:.0f}" for k, v in results.items()))


if __name__ == "__main__":
  app.run(main)
