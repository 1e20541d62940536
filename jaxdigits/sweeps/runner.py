"""Hyperparameter sweeps: grid or random search, picked on validation, resumable.

  python -m jaxdigits.sweep --config=configs/cnn.py --sweep=configs/sweeps/cnn_lr.py \\
      --workdir=runs/sweep

Every trial is a normal training run in ``WORKDIR/trial_NNN`` (its own checkpoints and
metrics.jsonl, resumable, loadable). Trials that differ only in numeric hyperparameters
(``VMAPPED``) train together as one jitted program, ``jax.vmap`` over their parameters,
optimizer states and hyperparameters, each on the batches it would see alone. The best
trial is chosen on validation accuracy; only that one is evaluated on test.
"""

from __future__ import annotations

import csv
import itertools
import json
import sys
import time
import types
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

import jaxdigits
from jaxdigits import checkpoints, config as config_lib, models
from jaxdigits.analysis import evaluate
from jaxdigits.inference import predictor as predict
from jaxdigits.training import engine as train
from jaxdigits.data import pipeline
from jaxdigits.training.metrics_writer import MetricsWriter
from jaxdigits.models.cnn import conv_as_matmul
from jaxdigits.training.state import create_train_state, make_optimizer
from jaxdigits.errors import SweepError

# Fields that may differ inside one vmapped group: they change values, not programs.
VMAPPED = ("seed", "train.learning_rate", "train.weight_decay", "train.momentum")
DISTRIBUTIONS = ("uniform", "log_uniform", "choice")




def load_sweep(path: str | Path) -> dict[str, Any]:
  """``get_sweep()`` of a sweep file."""
  try:
    module = types.ModuleType("sweep_definition")
    exec(compile(Path(path).read_text(), str(path), "exec"), module.__dict__)  # pylint: disable=exec-used
  except OSError as e:
    raise SweepError(f"sweep file {path} cannot be read: {e}") from e
  return module.get_sweep()


def _get(config: ml_collections.ConfigDict, field: str) -> Any:
  node = config
  for part in field.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      raise SweepError(f"sweep parameter {field}: no such config field")
    node = node[part]
  return node


def _sample(field: str, spec: Any, rng: np.random.Generator) -> Any:
  if not isinstance(spec, dict) or spec.get("distribution") not in DISTRIBUTIONS:
    raise SweepError(f"sweep parameter {field}: random search needs a dict with "
                     f"'distribution' in {list(DISTRIBUTIONS)}, got {spec!r}")
  kind = spec["distribution"]
  if kind == "choice":
    values = spec.get("values") or []
    if not values:
      raise SweepError(f"sweep parameter {field}: 'choice' needs a non-empty 'values' list")
    return values[rng.integers(len(values))]
  low, high = spec.get("min"), spec.get("max")
  if not (isinstance(low, (int, float)) and isinstance(high, (int, float)) and low < high):
    raise SweepError(f"sweep parameter {field}: {kind} needs numbers min < max, got "
                     f"min={low!r} max={high!r}")
  if kind == "log_uniform":
    if low <= 0:
      raise SweepError(f"sweep parameter {field}: log_uniform needs min > 0, got {low!r}")
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))
  return float(rng.uniform(low, high))


def expand(sweep: dict[str, Any], base: ml_collections.ConfigDict) -> list[dict[str, Any]]:
  """The trials of ``sweep`` as field → value overrides; refuses a bad sweep up front."""
  method, params = sweep.get("method"), sweep.get("parameters")
  if method not in ("grid", "random"):
    raise SweepError(f"sweep method must be 'grid' or 'random', got {method!r}")
  if not params:
    raise SweepError("sweep has no parameters")
  for field in params:
    _get(base, field)
  if method == "grid":
    for field, values in params.items():
      if not isinstance(values, (list, tuple)) or not values:
        raise SweepError(f"sweep parameter {field}: a grid needs a non-empty list of values")
    fields = list(params)
    return [dict(zip(fields, combo)) for combo in itertools.product(*params.values())]
  num = sweep.get("num_trials")
  if not isinstance(num, int) or num <= 0:
    raise SweepError(f"random search needs num_trials > 0, got {num!r}")
  rng = np.random.default_rng(sweep.get("seed", 0))
  trials = [{f: _sample(f, spec, rng) for f, spec in params.items()} for _ in range(num)]
  return trials


def trial_config(base: ml_collections.ConfigDict, overrides: dict[str, Any]) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict(base.to_dict())
  for field, value in overrides.items():
    *path, name = field.split(".")
    node = config
    for part in path:
      node = node[part]
    node[name] = type(node[name])(value) if isinstance(node[name], float) else value
  try:
    return config_lib.validate(config)
  except config_lib.ConfigError as e:
    raise SweepError(f"trial {overrides}: {e}") from e


def group_trials(configs: list[ml_collections.ConfigDict]) -> list[list[int]]:
  """Indices of trials whose configs differ only in ``VMAPPED`` fields."""
  groups: dict[str, list[int]] = {}
  for i, config in enumerate(configs):
    flat = checkpoints.config_to_json(config)
    for field in VMAPPED:
      *path, name = field.split(".")
      node = flat
      for part in path:
        node = node[part]
      node.pop(name)
    groups.setdefault(json.dumps(flat, sort_keys=True), []).append(i)
  return list(groups.values())


def _final_record(workdir: Path) -> dict[str, Any] | None:
  path = workdir / "metrics.jsonl"
  if not path.exists():
    return None
  lines = path.read_text().splitlines()
  last = json.loads(lines[-1]) if lines else {}
  return last if "best_epoch" in last else None


def train_vmapped(configs: list[ml_collections.ConfigDict], workdirs: list[Path]) -> None:
  """Trains trials that differ only in ``VMAPPED`` fields as one vmapped program.

  Each trial keeps its own seed (initial parameters, data order, dropout and shifts), so
  it ends where training it alone would, up to float rounding; each writes and resumes
  its own checkpoints like a normal run.
  """
  base, t = configs[0], configs[0].train
  device = jax.devices()[0]
  ckpts = [checkpoints.Checkpoints(w / "checkpoints", c) for c, w in zip(configs, workdirs)]
  splits = pipeline.load_splits(base.data)
  model = trained = models.build(base.model)
  if jax.default_backend() == "cpu" and hasattr(model, "conv"):  # CNN, ResNet
    # Why: conv_as_matmul's docstring. Validation runs one trial at a time, where XLA's
    # convolution was faster (6,000 digits: 0.34 s against 0.93 s).
    trained = model.clone(conv=conv_as_matmul)
  steps_per_epoch = len(splits.train) // t.batch_size
  total_steps = steps_per_epoch * t.num_epochs
  keys = [jax.random.split(jax.random.key(c.seed), 3) for c in configs]
  # One optimizer object for the state's structure; each trial's hyperparameters are
  # injected as traced values in the step.
  tx = make_optimizer(t, total_steps)
  # vmapped, the initialisation compiles once instead of once per trial (~1.8 s each).
  shape = splits.train.images.shape[1:]
  stacked = jax.vmap(lambda k: create_train_state(k, trained, tx, shape))(
      jnp.stack([k[0] for k in keys]))
  start_epoch = min(c.latest_step() or 0 for c in ckpts)
  if start_epoch:
    states = [c.restore(start_epoch, jax.tree.map(lambda x, i=i: x[i], stacked))
              for i, c in enumerate(ckpts)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
  stacked = jax.device_put(stacked, device)
  hparams = {f.split(".")[-1]: jnp.array([float(_get(c, f)) for c in configs])
             for f in VMAPPED if f != "seed"}
  step_keys = jnp.stack([k[2] for k in keys])
  images, labels = jax.device_put(splits.train.images, device), jax.device_put(
      splits.train.labels, device)

  def compile_steps(n):
    steps = train.train_steps(n, max_shift=t.max_shift, label_smoothing=t.label_smoothing,
                              max_rotation=t.max_rotation, max_scale=t.max_scale)

    def one_trial(state, hp, indices, key):
      trial_tx = make_optimizer(types.SimpleNamespace(**{**t.to_dict(), **hp}), total_steps)
      return steps(state, images, labels, indices, key, tx=trial_tx)

    return jax.jit(jax.vmap(one_trial), donate_argnums=0)

  chunk = min(t.steps_per_call, steps_per_epoch)
  run_chunk, run_one = compile_steps(chunk), compile_steps(1)
  writers = [MetricsWriter(w, total_steps=total_steps, initial_step=0, progress_bar=False)
             for w in workdirs]
  variables = lambda s: {"params": s.params, "batch_stats": s.batch_stats}
  try:
    for epoch in range(start_epoch, t.num_epochs):
      start = time.perf_counter()
      indices = np.stack([pipeline.epoch_indices(jax.random.fold_in(k[1], epoch),
                                                 len(splits.train), t.batch_size) for k in keys])
      totals = np.zeros((len(configs), 2))
      for i, n in train.epoch_plan(steps_per_epoch, chunk):
        stacked, sums = (run_chunk if n == chunk else run_one)(
            stacked, hparams, jnp.asarray(indices[:, i:i + n]), step_keys)
        totals += np.asarray(sums)  # blocks per call, like the trainer
      seconds = time.perf_counter() - start
      seen = steps_per_epoch * t.batch_size
      for j, (ckpt, writer) in enumerate(zip(ckpts, writers)):
        state = jax.tree.map(lambda x: x[j], stacked)
        val_acc = evaluate.accuracy(
            predict.batched_logits(model.apply, variables(state), splits.validation.images,
                                    t.eval_batch_size), splits.validation.labels)
        writer.write((epoch + 1) * steps_per_epoch, {
            "epoch": epoch + 1, "train_loss": float(totals[j, 0] / seen),
            "train_accuracy": float(totals[j, 1] / seen), "val_accuracy": val_acc,
            "epoch_seconds": seconds, "images_per_second": seen * len(configs) / seconds,
            "vmapped_trials": len(configs)})
        if (epoch + 1) % base.checkpoint.every_epochs == 0 or epoch + 1 == t.num_epochs:
          if (ckpt.latest_step() or 0) < epoch + 1:  # a killed group may have saved some
            ckpt.save(epoch + 1, state, {"val_accuracy": val_acc})
    for ckpt, writer in zip(ckpts, writers):
      ckpt.wait()
      best = ckpt.best_step()
      writer.write(total_steps, {"best_epoch": best,
                                 "val_accuracy": ckpt.metrics(best).get("val_accuracy"),
                                 "train_examples": len(splits.train),
                                 "validation_examples": len(splits.validation)})
  finally:
    for ckpt, writer in zip(ckpts, writers):
      writer.close()
      ckpt.close()


def run_sweep(base: ml_collections.ConfigDict, sweep: dict[str, Any], workdir: str | Path, *,
              vmap: bool = True) -> list[dict[str, Any]]:
  """Runs (or resumes) every trial, then evaluates the best on validation on test.

  With ``vmap`` (single device, Flax models), each group of trials that differ only in
  ``VMAPPED`` fields trains as one program; otherwise trials train one after another.

  Returns one row per trial (overrides, validation accuracy, best epoch, seconds, and
  test accuracy for the selected trial only) and writes results.csv and plots.
  """
  workdir = Path(workdir)
  trials = expand(sweep, base)
  configs = [trial_config(base, overrides) for overrides in trials]  # all checked first
  workdir.mkdir(parents=True, exist_ok=True)
  dirs = [workdir / f"trial_{i:03d}" for i in range(len(trials))]
  for d, overrides in zip(dirs, trials):
    d.mkdir(exist_ok=True)
    (d / "trial.json").write_text(json.dumps(overrides, indent=1))
  seconds = {}
  for group in group_trials(configs):
    todo = [i for i in group if _final_record(dirs[i]) is None]
    if not todo:
      continue
    start = time.perf_counter()
    if (vmap and len(todo) > 1 and jax.device_count() == 1
        and base.model.name not in models.CLASSIC):
      logging.info("trials %s: vmapped together", todo)
      train_vmapped([configs[i] for i in todo], [dirs[i] for i in todo])
      seconds.update({i: (time.perf_counter() - start) / len(todo) for i in todo})
    else:
      for i in todo:
        start = time.perf_counter()
        train.train_and_evaluate(configs[i], dirs[i], evaluate_test=False)
        seconds[i] = time.perf_counter() - start

  rows = []
  for i, (overrides, d) in enumerate(zip(trials, dirs)):
    final = _final_record(d)
    rows.append({"trial": d.name, **overrides, "val_accuracy": final["val_accuracy"],
                 "best_epoch": final["best_epoch"], "seconds": seconds.get(i),
                 "test_accuracy": None})
  best = max(range(len(rows)), key=lambda i: (rows[i]["val_accuracy"], -i))
  predictor = jaxdigits.load(dirs[best])  # a Flax checkpoint or a classic fit
  data = predictor.config.data  # only the test split: train and validation are not needed
  test = evaluate.load_eval_split(predictor, data.dataset, "test", raw_dir=data.raw_dir,
                                  data_dir=data.tfds_dir)
  rows[best]["test_accuracy"] = evaluate.accuracy(predictor.logits(test.images), test.labels)
  _write_results(rows, best, list(sweep["parameters"]), workdir, dirs)
  return rows


def _write_results(rows, best, fields, workdir: Path, dirs: list[Path]) -> None:
  with open(workdir / "results.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  order = sorted(range(len(rows)), key=lambda i: -rows[i]["val_accuracy"])
  print(f"{'trial':10s} " + " ".join(f"{f:>22s}" for f in fields) + "   val acc  test acc")
  for i in order:
    r = rows[i]
    test = f"{r['test_accuracy']:.4f}" if r["test_accuracy"] is not None else "-"
    print(f"{r['trial']:10s} " + " ".join(f"{r[f]!s:>22.22s}" for f in fields)
          + f"   {r['val_accuracy']:.4f}  {test:>8s}" + ("  <- best on validation" if i == best else ""))

  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, len(fields), figsize=(4 * len(fields), 3.2), squeeze=False)
  for ax, field in zip(axes[0], fields):
    values = [r[field] for r in rows]
    ax.scatter(values, [r["val_accuracy"] for r in rows])
    numeric = all(isinstance(v, (int, float)) for v in values)
    if numeric and min(values) > 0 and max(values) / min(values) >= 20:
      ax.set_xscale("log")
    ax.set_xlabel(field)
    ax.set_ylabel("validation accuracy")
  fig.tight_layout()
  fig.savefig(workdir / "val_accuracy_vs_params.png", dpi=100)
  plt.close(fig)
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for i in order[:5]:
    epochs = [json.loads(l) for l in (dirs[i] / "metrics.jsonl").read_text().splitlines()]
    epochs = {r["epoch"]: r["val_accuracy"] for r in epochs if "epoch" in r}
    ax.plot(list(epochs), list(epochs.values()), marker="o", label=rows[i]["trial"])
  ax.set_xlabel("epoch")
  ax.set_ylabel("validation accuracy")
  ax.legend()
  fig.tight_layout()
  fig.savefig(workdir / "learning_curves.png", dpi=100)
  plt.close(fig)
