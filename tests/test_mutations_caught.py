"""Pure tests for behaviours a mutation pass (issue 17) found unguarded: each fails when the
behaviour is broken on purpose, and needs no dataset.

* ``train.momentum`` and ``train.warmup_fraction`` reach the optimizer (they are swept and
  documented, so a silently ignored value changes every run that sets one);
* ``evaluate --split=validation`` (and ``train``) read exactly the examples training used for
  that split;
* the final record serves the checkpoint best on validation, not the last one (on real data
  the last epoch is nearly always the best, so the tiny real runs cannot tell them apart),
  and the last epoch is checkpointed when ``checkpoint.every_epochs`` does not divide
  ``train.num_epochs``.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import synthetic
from jaxdigits import checkpoints, config as config_lib, models, records
from jaxdigits.analysis import evaluate
from jaxdigits.data import pipeline
from jaxdigits.inference.contract import Predictor
from jaxdigits.models import forward
from jaxdigits.training import engine
from jaxdigits.training import state as state_lib

LR = 0.1


def _learning_rates(total: int, **train) -> np.ndarray:
  """The step sizes the optimizer of ``train.*`` takes, step by step, on a unit gradient.

  Plain SGD (momentum 0, no decay) moves by exactly the learning rate of each step.
  """
  t = config_lib.defaults().train
  t.update({"optimizer": "sgd", "weight_decay": 0.0, "momentum": 0.0, "learning_rate": LR,
            **train})
  tx = state_lib.make_optimizer(t, total)
  params = {"w": jnp.zeros(1)}
  opt_state, rates = tx.init(params), []
  for _ in range(total):
    updates, opt_state = tx.update({"w": jnp.ones(1)}, opt_state, params)
    rates.append(-float(updates["w"][0]))
  return np.array(rates)


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_sgd_takes_its_momentum_from_the_config(momentum):
  """Nesterov momentum m moves the first step by lr * (1 + m) on a unit gradient."""
  rates = _learning_rates(2, schedule="constant", momentum=momentum)
  np.testing.assert_allclose(rates[0], LR * (1 + momentum), rtol=1e-6)
  np.testing.assert_allclose(rates[1], LR * (1 + momentum + momentum**2), rtol=1e-6)


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
@pytest.mark.parametrize("warmup", [0.1, 0.4])
def test_the_learning_rate_peaks_where_the_warmup_ends(schedule, warmup):
  total = 50
  rates = _learning_rates(total, schedule=schedule, warmup_fraction=warmup)
  assert int(np.argmax(rates)) == round(warmup * total), rates
  np.testing.assert_allclose(rates.max(), LR, rtol=1e-5)
  assert rates[0] < 0.1 * LR and rates[-1] < 0.1 * LR  # rises from near 0 and decays again


class _Reader(Predictor):
  """A predictor that only says what it reads: 28x28 MNIST with ``validation_fraction``."""

  def __init__(self, validation_fraction: float):
    self.config = config_lib.defaults()
    self.config.data.validation_fraction = validation_fraction

  def _logits(self, images):
    raise AssertionError("not used")


@pytest.mark.parametrize("fraction", [0.1, 0.25])
def test_evaluate_reads_the_examples_training_used_for_each_split(monkeypatch, fraction):
  """Each (tfds split, first, last) that evaluate reads is the one training read."""
  read = []

  def fake_load(dataset, split, *, start=0, stop=None, **_):
    n = {"train": config_lib.TRAIN_SIZES[dataset], "test": 10_000}[split]
    start, stop = range(n)[start:stop].start, range(n)[start:stop].stop
    read.append((split, start, stop))
    return pipeline.Split(np.zeros((1, 28, 28, 1), np.uint8), np.zeros(1, np.int32))

  monkeypatch.setattr(pipeline, "load_tfds", fake_load)
  monkeypatch.setattr(evaluate, "load_tfds", fake_load)
  data = ml_collections.ConfigDict(config_lib.defaults().data.to_dict())
  data.validation_fraction = fraction
  pipeline.load_splits(data)
  trained = dict(zip(["train", "validation", "test"], read))
  n = config_lib.TRAIN_SIZES["mnist"]
  assert trained["validation"] == ("train", n - round(n * fraction), n)
  assert trained["train"] == ("train", 0, n - round(n * fraction))  # disjoint from validation
  reader = _Reader(fraction)
  for split in ("train", "validation", "test"):
    read.clear()
    evaluate.load_eval_split(reader, "mnist", split)
    assert read == [trained[split]], split
    tfds_split, start, stop = evaluate.split_range(reader, "mnist", split)
    assert (tfds_split, start, stop if stop is not None else trained[split][2]) == trained[split]


@pytest.mark.slow  # three epochs of a 4-channel CNN on 512 generated digits
def test_the_final_record_serves_the_epoch_best_on_validation(tmp_path, monkeypatch):
  """Validation accuracy is scripted to peak at epoch 2 of 3: the final record, the test
  accuracy it reports and what a bundle would serve all come from epoch 2's checkpoint.
  Checkpoints every 2 epochs: epochs 2 and 3 (the last) are saved."""
  train, val, test = (synthetic.strokes(n, seed) for n, seed in [(512, 1), (128, 2), (256, 3)])
  splits = pipeline.Splits(pipeline.Split(*train), pipeline.Split(*val), pipeline.Split(*test))
  monkeypatch.setattr(pipeline, "load_splits", lambda data: splits)
  # Epochs 1-3, then 0.9 for any re-measure of the served checkpoint (epoch 2's).
  scripted = itertools.chain([0.5, 0.9, 0.7], itertools.repeat(0.9))
  real = engine._accuracy
  monkeypatch.setattr(engine, "_accuracy", lambda program, variables, split, t: (
      next(scripted) if split is splits.validation else real(program, variables, split, t)))
  config = config_lib.defaults()
  config.model = ml_collections.ConfigDict({"name": "cnn", "features": (4,), "dense": 0})
  config.train.update(num_epochs=3, batch_size=64, schedule="constant", learning_rate=1e-2)
  config.checkpoint.update(keep=1, every_epochs=2)
  config.progress_bar = False
  final = engine.train_and_evaluate(config, tmp_path)
  assert final["best_epoch"] == 2 and final["val_accuracy"] == 0.9, final
  assert records.read(tmp_path).final["best_epoch"] == 2

  model = models.build(config.model)
  target = state_lib.create_train_state(jax.random.key(0), model,
                                        state_lib.make_optimizer(config.train, 1), (28, 28, 1))
  ckpts = checkpoints.Checkpoints(tmp_path / "checkpoints")
  try:
    assert sorted(checkpoints.step_dirs(tmp_path / "checkpoints")) == [2, 3]
    assert ckpts.best_step() == 2 and ckpts.latest_step() == 3
    best = ckpts.restore(2, target)
  finally:
    ckpts.close()
  logits = forward.batched_logits(model.apply, {"params": best.params,
                                                "batch_stats": best.batch_stats}, test[0])
  assert final["test_accuracy"] == forward.accuracy(logits, test[1])
