"""Each Flax model in the registry trains through the one trainer and beats chance."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax import lax

from conftest import tiny_config
from jaxdigits.training import engine as train
from jaxdigits.models.cnn import CNN, conv_as_matmul
from jaxdigits.models.resnet import ResNet

FIELDS = {
    "linear": ("linear", {}),
    "mlp": ("mlp", {"model.hidden": (64,)}),
    "resnet": ("resnet", {"model.stage_features": (8, 16), "model.blocks_per_stage": 1}),
    # The all-convolution M5 layout of configs/m5.py, narrowed.
    "cnn_m5": ("cnn", {"model.features": (8, 8, 8), "model.kernel_size": 5,
                       "model.padding": "VALID", "model.pool": False, "model.dense": 0}),
}


@pytest.mark.parametrize("variant", sorted(FIELDS))
def test_tiny_run_beats_chance(raw_dir, tfds_dir, tmp_path, variant):
  name, fields = FIELDS[variant]
  config = tiny_config(raw_dir, tfds_dir, **{"data.train_limit": 3000, "train.num_epochs": 2,
                                             **fields})
  config.model = type(config.model)({"name": name, **{k.split(".")[1]: v for k, v in
                                                      fields.items()}})
  final = train.train_and_evaluate(config, tmp_path)
  # Chance is 0.10; the ResNet's BatchNorm statistics lag after ~90 steps, so the floor is low.
  assert final["test_accuracy"] > 0.25, final


@pytest.mark.parametrize("kernel, stride, padding", [(3, 1, "SAME"), (3, 2, "SAME"),
                                                     (1, 2, "SAME"), (3, 1, "VALID")])
def test_conv_as_matmul_is_the_convolution(kernel, stride, padding):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 7, 8, 5)).astype(np.float32)
  w = rng.normal(size=(kernel, kernel, 5, 6)).astype(np.float32)
  want = lax.conv_general_dilated(x, w, (stride, stride), padding,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(conv_as_matmul(x, w, (stride, stride), padding), want,
                             rtol=1e-5, atol=1e-5)


def test_all_convolution_cnn_shapes():
  """VALID 5x5 convs without pooling: 28 → 24 → 20, then the logits straight from 20x20x8."""
  model = CNN(features=(4, 8), kernel_size=5, padding="VALID", pool=False, dense=0)
  params = model.init(jax.random.key(0), np.zeros((1, 28, 28, 1)), train=False)["params"]
  assert sorted(params) == ["BatchNorm_0", "BatchNorm_1", "Conv_0", "Conv_1", "Dense_0"]
  assert params["Conv_1"]["kernel"].shape == (5, 5, 4, 8)
  assert params["Dense_0"]["kernel"].shape == (20 * 20 * 8, 10)


def test_too_many_valid_blocks_names_the_field():
  too_deep = CNN(features=(4,) * 7, kernel_size=5, padding="VALID", pool=False)
  with pytest.raises(ValueError, match=r"model\.features: 7 VALID 5x5 conv blocks shrink"):
    too_deep.init(jax.random.key(0), np.zeros((1, 28, 28, 1)), train=False)


@pytest.mark.parametrize("model", [
    CNN(features=(4, 8)), ResNet(stage_features=(4, 8)),
    CNN(features=(4, 8), kernel_size=5, padding="VALID", pool=False, dense=0)])
def test_matmul_convs_keep_parameters_and_outputs(model):
  """Sweeps swap the convolution (``conv=``): checkpoints and predictions must not change."""
  x = np.random.default_rng(1).uniform(size=(3, 28, 28, 1)).astype(np.float32)
  variables = model.init(jax.random.key(0), x, train=False)
  swapped = model.clone(conv=conv_as_matmul)
  assert (jax.tree.structure(swapped.init(jax.random.key(0), x, train=False))
          == jax.tree.structure(variables))
  np.testing.assert_allclose(swapped.apply(variables, x, train=False),
                             model.apply(variables, x, train=False), rtol=1e-4, atol=1e-5)
