"""The train step and the epoch loop on generated digits (no dataset): the loss falls, the
step trains on the distorted batch it draws, label smoothing, weight decay and BatchNorm do
what they say, validation is the validation split, and a resumed run is the run."""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import synthetic
from jaxdigits import checkpoints, config as config_lib, models
from jaxdigits.data import pipeline
from jaxdigits.models.cnn import CNN
from jaxdigits.models.forward import batched_logits
from jaxdigits.models.linear import Linear
from jaxdigits.training import engine
from jaxdigits.training import state as state_lib

IMAGES, LABELS = synthetic.strokes(64)
LR = 0.1


def _state(model, **fields) -> state_lib.TrainState:
  """A fresh state of ``model`` under a constant learning rate (``train.*`` ``fields``)."""
  t = config_lib.defaults().train
  t.update({"schedule": "constant", "learning_rate": LR, **fields})
  tx = state_lib.make_optimizer(t, 100)
  return state_lib.create_train_state(jax.random.key(0), model, tx, IMAGES.shape[1:])


@functools.lru_cache(maxsize=None)
def _step(**options):
  defaults = {"max_shift": 0, "label_smoothing": 0.0}
  return jax.jit(functools.partial(engine.train_step, **{**defaults, **options}))


def _run(state, key=0, **options):
  """One train step on the fixed batch: (new state, [loss sum, correct])."""
  return _step(**options)(state, IMAGES, LABELS, jax.random.key(key))


def _differ(a, b) -> bool:
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_loss_falls_on_a_fixed_batch():
  state = _state(CNN(features=(4, 8), dense=16), learning_rate=1e-2)
  losses, correct = [], []
  for _ in range(12):
    state, sums = _run(state)
    losses.append(float(sums[0]) / len(LABELS))
    correct.append(int(sums[1]))
  assert int(state.step) == 12
  assert losses[-1] < 0.5 * losses[0], losses
  assert correct[-1] > correct[0] + 20, correct


@pytest.mark.parametrize("options", [{"max_shift": 2}, {"max_rotation": 10.0},
                                     {"max_scale": 0.1}])
def test_the_step_trains_on_the_distorted_batch(options):
  """A distortion that returned its input would train exactly as no distortion does."""
  state = _state(Linear())
  plain, plain_sums = _run(state)
  distorted, sums = _run(state, **options)
  assert _differ(distorted.params, plain.params)
  assert float(sums[0]) != float(plain_sums[0])
  again, _ = _run(state, **options)
  assert not _differ(again.params, distorted.params)  # the key decides the distortion...
  other_key, _ = _run(state, key=1, **options)
  assert _differ(other_key.params, distorted.params)  # ...and another key draws another


def _log_softmax(z: np.ndarray) -> np.ndarray:
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_loss_is_cross_entropy_on_smoothed_targets(smoothing):
  state = _state(Linear())
  _, sums = _run(state, label_smoothing=smoothing)
  dense = jax.tree.map(np.asarray, state.params["Dense_0"])
  x = IMAGES.reshape(len(IMAGES), -1).astype(np.float64) / 255
  log_p = _log_softmax(x @ dense["kernel"] + dense["bias"])
  targets = (1 - smoothing) * np.eye(10)[LABELS] + smoothing / 10
  want = -(targets * log_p).sum(-1).mean()
  np.testing.assert_allclose(float(sums[0]) / len(LABELS), want, rtol=1e-5)
  assert int(sums[1]) == int((log_p.argmax(-1) == LABELS).sum())


@pytest.mark.parametrize("optimizer, factor", [("adamw", 1.0), ("sgd", 1.9)])
def test_weight_decay_shrinks_every_weight_by_lr_times_decay(optimizer, factor):
  """AdamW subtracts lr * decay * w; SGD adds decay * w to the gradient, which Nesterov
  momentum 0.9 applies 1.9 times on the first step."""
  decayed, _ = _run(_state(Linear(), optimizer=optimizer, weight_decay=0.05))
  plain, _ = _run(_state(Linear(), optimizer=optimizer, weight_decay=0.0))
  start = _state(Linear()).params
  for d, p, w in zip(*(jax.tree.leaves(t) for t in (decayed.params, plain.params, start))):
    np.testing.assert_allclose(d - p, -LR * factor * 0.05 * np.asarray(w), atol=1e-6)
  assert np.abs(np.asarray(start["Dense_0"]["kernel"])).max() > 0.01  # a decay to see


def test_batch_norm_statistics_move_towards_the_batch():
  model = CNN(features=(4,), dense=0)
  state = _state(model)
  after, _ = _run(state)
  x = jnp.asarray(IMAGES, jnp.float32) / 255
  conv = jax.lax.conv_general_dilated(x, state.params["Conv_0"]["kernel"], (1, 1), "SAME",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  stats = jax.tree.map(np.asarray, after.batch_stats["BatchNorm_0"])
  # Momentum 0.9 from the initial mean 0 and variance 1.
  np.testing.assert_allclose(stats["mean"], 0.1 * conv.mean((0, 1, 2)), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * conv.var((0, 1, 2)), rtol=1e-4)


def test_epoch_plan_covers_every_step_once():
  assert engine.epoch_plan(10, 4) == [(0, 4), (4, 4), (8, 1), (9, 1)]
  assert engine.epoch_plan(8, 4) == [(0, 4), (4, 4)]
  for steps, chunk in [(1, 1), (7, 3), (540, 4)]:
    covered = [i + j for i, n in engine.epoch_plan(steps, chunk) for j in range(n)]
    assert covered == list(range(steps))


# ------------------------------------------------------------ the epoch loop, on generated splits


@pytest.fixture()
def generated_splits(monkeypatch):
  """The engine reads generated splits; validation labels are shuffled, so its accuracy
  (~10%) is nothing like train's or test's."""
  train, val, test = (synthetic.strokes(n, seed) for n, seed in [(512, 1), (256, 2), (256, 3)])
  noisy = np.random.default_rng(0).permutation(val[1])
  splits = pipeline.Splits(pipeline.Split(*train), pipeline.Split(val[0], noisy),
                           pipeline.Split(*test))
  monkeypatch.setattr(pipeline, "load_splits", lambda data: splits)
  return splits


def _loop_config(num_epochs: int):
  config = config_lib.defaults()
  config.model = ml_collections.ConfigDict({"name": "cnn", "features": (4,), "dense": 0})
  config.train.update(num_epochs=num_epochs, batch_size=64, schedule="constant",
                      learning_rate=1e-2, max_shift=1)
  config.checkpoint.keep = 3
  config.progress_bar = False
  return config


def _saved(workdir, step: int, config):
  model = models.build(config.model)
  target = state_lib.create_train_state(jax.random.key(0), model,
                                        state_lib.make_optimizer(config.train, 1), (28, 28, 1))
  ckpts = checkpoints.Checkpoints(workdir / "checkpoints")
  try:
    return model, ckpts.restore(step, target)
  finally:
    ckpts.close()


def _epochs(workdir) -> list[dict]:
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [r for r in map(json.loads, lines) if "epoch" in r]


@pytest.mark.slow
def test_loop_validates_on_validation_and_resumes_exactly(generated_splits, tmp_path,
                                                           monkeypatch):
  orders, shuffle = [], pipeline.epoch_indices

  def recorded_shuffle(*args):
    orders.append(shuffle(*args))
    return orders[-1]

  monkeypatch.setattr(pipeline, "epoch_indices", recorded_shuffle)
  straight = engine.train_and_evaluate(_loop_config(3), tmp_path / "straight")
  epochs = _epochs(tmp_path / "straight")
  assert [r["epoch"] for r in epochs] == [1, 2, 3]
  assert len(orders) == 3 and len({o.tobytes() for o in orders}) == 3  # reshuffled each epoch
  val = generated_splits.validation
  for record in epochs:  # each epoch's val_accuracy is its checkpoint's, on validation
    model, state = _saved(tmp_path / "straight", record["epoch"], _loop_config(3))
    logits = batched_logits(model.apply, {"params": state.params,
                                          "batch_stats": state.batch_stats}, val.images)
    assert record["val_accuracy"] == float(np.mean(np.argmax(logits, -1) == val.labels))
    assert record["val_accuracy"] < 0.3 and record["train_accuracy"] > 0.5, record
  assert straight["test_accuracy"] > 0.6, straight

  engine.train_and_evaluate(_loop_config(1), tmp_path / "resumed")  # stopped after epoch 1
  resumed = engine.train_and_evaluate(_loop_config(3), tmp_path / "resumed")
  assert [r["epoch"] for r in _epochs(tmp_path / "resumed")] == [1, 2, 3]
  _, a = _saved(tmp_path / "straight", 3, _loop_config(3))
  _, b = _saved(tmp_path / "resumed", 3, _loop_config(3))
  assert int(a.step) == int(b.step) == 3 * 512 // 64
  assert not _differ((a.params, a.batch_stats, a.opt_state), (b.params, b.batch_stats,
                                                               b.opt_state))
  assert resumed["test_accuracy"] == straight["test_accuracy"]
