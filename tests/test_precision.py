"""model.dtype: a bfloat16 CNN computes in bfloat16 but keeps float32 parameters, BatchNorm
statistics and logits, trains, and a restored config builds the same model; validate refuses
any other dtype naming the field."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import synthetic
from jaxdigits import config as config_lib, models
from jaxdigits.errors import JaxdigitsError
from jaxdigits.training import engine
from jaxdigits.training import state as state_lib

IMAGES, LABELS = synthetic.strokes(32)


def _model_config(dtype: str):
  config = config_lib.defaults()
  config.model.update({"features": (4, 8), "dense": 16, "dtype": dtype})
  return config


def _state(dtype: str) -> state_lib.TrainState:
  config = _model_config(dtype)
  t = config.train
  t.update({"schedule": "constant", "learning_rate": 1e-2})
  model = models.build(config.model)  # what the trainer and the restore path both call
  return state_lib.create_train_state(jax.random.key(0), model,
                                      state_lib.make_optimizer(t, 10), IMAGES.shape[1:])


def _dtypes(tree) -> set:
  return {leaf.dtype for leaf in jax.tree.leaves(tree)}


def test_bfloat16_trains_with_float32_params_statistics_and_logits():
  state = _state("bfloat16")
  step = jax.jit(lambda s, k: engine.train_step(s, IMAGES, LABELS, k, max_shift=0,
                                                label_smoothing=0.0))
  new, sums = step(state, jax.random.key(1))
  assert int(new.step) == 1 and np.isfinite(float(sums[0]))
  assert _dtypes(new.params) == {jnp.dtype(jnp.float32)}
  assert _dtypes(new.batch_stats) == {jnp.dtype(jnp.float32)}
  assert any(not np.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(state.params), jax.tree.leaves(new.params)))
  variables = {"params": new.params, "batch_stats": new.batch_stats}
  x = jnp.asarray(IMAGES, jnp.float32) / 255.0
  logits = new.apply_fn(variables, x, train=False)
  assert logits.dtype == jnp.float32
  # The compute really is bfloat16: the same parameters in float32 give other logits.
  fp32 = models.build(_model_config("float32").model)
  assert not np.array_equal(np.asarray(logits), np.asarray(fp32.apply(variables, x, train=False)))


def test_float32_is_the_default():
  assert models.config_fields("cnn")["dtype"] == "float32"


@pytest.mark.parametrize("bad,says", [("float16", "'float32' or 'bfloat16'"),
                                      ("bf16", "'float32' or 'bfloat16'"),
                                      (32, "must be a string")])
def test_validate_refuses_other_dtypes_naming_the_field(bad, says):
  config = _model_config(bad)
  with pytest.raises(JaxdigitsError, match=rf"model\.dtype: .*{says}"):
    config_lib.validate(config)
