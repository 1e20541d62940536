"""Models: every shipped config builds the exact layout it documents (parameter counts),
outputs [N, 10], keeps dropout to training; each Flax model learns through the one trainer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import synthetic
from conftest import REPO, tiny_config
from jaxdigits import config as config_lib, models
from jaxdigits.data import pipeline
from jaxdigits.models import classic
from jaxdigits.models.cnn import CNN, conv_as_matmul
from jaxdigits.models.forward import batched_logits
from jaxdigits.models.mlp import MLP
from jaxdigits.models.resnet import ResNet
from jaxdigits.training import engine as train

# (parameters, BatchNorm statistics) of each shipped Flax config, from jax.eval_shape. A
# change of layer, width or stem changes them: update the config's docstring too.
FLAX_SIZES = {
    "best.py": (216_330, 384),
    "cnn.py": (409_082, 96),  # 3x3x16 + 3x3x16x32 convs, BN, 7*7*32 → 256 → 10
    "fast.py": (46_090, 128),  # crop 4: 20x20 → 10x10x4 → conv 32, pool → conv 32, pool → 2*2*32
    "linear.py": (7_850, 0),  # 784 x 10 + 10
    "m5.py": (1_128_170, 960),
    "mlp.py": (1_863_690, 0),  # 784 → 1024 → 1024 → 10
    "resnet.py": (308_938, 1_344),
    "usps_cnn.py": (409_082, 96),  # the MNIST layout on USPS resized to 28x28
    "usps_best.py": (216_330, 384),  # best.py's network, USPS + MNIST train
}
# Width of the features each shipped classic config reads (HOG: 6x6 blocks x 2x2 cells x 9
# orientations; pixels: 28 * 28, before any PCA).
CLASSIC_WIDTHS = {"hog_svm.py": 1296, "knn.py": 784, "linear_svm.py": 1296,
                  "random_forest.py": 784, "svm.py": 784}
SHIPPED = sorted(p.name for p in (REPO / "configs").glob("*.py"))


def _size(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_every_shipped_config_has_its_size_here():
  assert sorted({**FLAX_SIZES, **CLASSIC_WIDTHS}) == SHIPPED


@pytest.mark.parametrize("name", sorted(FLAX_SIZES))
def test_shipped_flax_config_parameter_count_and_output(name):
  config = config_lib.validate(config_lib.load_file(REPO / "configs" / name))
  model = models.build(config.model)
  shape = config_lib.image_shape(config.data)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, *shape)),
                                                train=False))
  assert (_size(variables["params"]), _size(variables.get("batch_stats", {}))) == \
      FLAX_SIZES[name]
  logits = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((5, *shape)), train=False),
                          variables)
  assert logits.shape == (5, 10) and logits.dtype == jnp.float32


@pytest.mark.parametrize("name", sorted(CLASSIC_WIDTHS))
def test_shipped_classic_config_reads_its_features(name):
  config = config_lib.validate(config_lib.load_file(REPO / "configs" / name))
  model = classic.Classic(config.model.name, classic.settings(config.model))
  images = synthetic.strokes(3)[0]
  assert classic.featurize(model, images).shape == (3, CLASSIC_WIDTHS[name])


@pytest.mark.parametrize("model", [CNN(features=(4,), dense=16, dropout=0.5),
                                   MLP(hidden=(32,), dropout=0.5)])
def test_dropout_acts_in_training_only(model):
  x = jnp.asarray(synthetic.strokes(8)[0], jnp.float32) / 255
  variables = model.init(jax.random.key(0), x, train=False)
  evaluated = model.apply(variables, x, train=False)  # needs no dropout key
  np.testing.assert_array_equal(evaluated, model.clone(dropout=0.0).apply(variables, x,
                                                                         train=False))
  trained = lambda key: model.apply(variables, x, train=True, rngs={"dropout": key},
                                    mutable=["batch_stats"])[0]
  no_dropout = model.clone(dropout=0.0).apply(variables, x, train=True,
                                              mutable=["batch_stats"])[0]
  assert not np.allclose(trained(jax.random.key(1)), trained(jax.random.key(2)))
  assert not np.allclose(trained(jax.random.key(1)), no_dropout)


def test_inference_reads_uint8_images_as_training_does():
  """Serving divides by 255 inside its jitted program, as the train step does; padding the
  last batch changes nothing."""
  model = CNN(features=(4,), dense=16)
  images = synthetic.strokes(7)[0]
  variables = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), train=False)
  want = model.apply(variables, pipeline.normalize(images), train=False)
  np.testing.assert_allclose(batched_logits(model.apply, variables, images, batch_size=3), want,
                             rtol=1e-5, atol=1e-6)
  assert float(pipeline.normalize(np.full((1,), 255, np.uint8))[0]) == 1.0


# Tiny runs: 3,000 MNIST digits, 2 epochs of batch 64 (93 steps). Measured test accuracy
# (2-core CPU, seed 0): linear 85.44%, mlp 88.81%, resnet 81.11%, cnn_m5 94.13%; each floor
# is ~3 points below, so a model that learns less than it did (a wrong layer, a frozen
# BatchNorm, an optimizer that ignores a group of parameters) fails. The ResNet keeps the
# shipped space-to-depth stem: at (8, 16) channels without it, 93 steps reached only 36%.
FIELDS = {
    "linear": ("linear", {}, 0.82),
    "mlp": ("mlp", {"model.hidden": (64,)}, 0.86),
    "resnet": ("resnet", {"model.stage_features": (16, 32), "model.blocks_per_stage": 1,
                          "model.space_to_depth": 2}, 0.78),
    # The all-convolution M5 layout of configs/m5.py, narrowed.
    "cnn_m5": ("cnn", {"model.features": (8, 8, 8), "model.kernel_size": 5,
                       "model.padding": "VALID", "model.pool": False, "model.dense": 0}, 0.91),
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(FIELDS))
def test_tiny_run_learns(raw_dir, tfds_dir, tmp_path, variant):
  name, fields, floor = FIELDS[variant]
  config = tiny_config(raw_dir, tfds_dir, **{"data.train_limit": 3000, "train.num_epochs": 2,
                                             **fields})
  config.model = type(config.model)({"name": name, **{k.split(".")[1]: v for k, v in
                                                      fields.items()}})
  final = train.train_and_evaluate(config, tmp_path)
  assert final["test_accuracy"] >= floor, final
  assert abs(final["val_accuracy"] - final["test_accuracy"]) < 0.03, final  # no overfit to val


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
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)),
                                             train=False))["params"]
  assert sorted(params) == ["BatchNorm_0", "BatchNorm_1", "Conv_0", "Conv_1", "Dense_0"]
  assert params["Conv_1"]["kernel"].shape == (5, 5, 4, 8)
  assert params["Dense_0"]["kernel"].shape == (20 * 20 * 8, 10)


def test_too_many_valid_blocks_names_the_field():
  too_deep = CNN(features=(4,) * 7, kernel_size=5, padding="VALID", pool=False)
  with pytest.raises(ValueError, match=r"model\.features: 7 VALID 5x5 conv blocks shrink"):
    jax.eval_shape(lambda: too_deep.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)),
                                         train=False))


def test_crop_trims_the_border_and_a_crop_too_large_names_the_field():
  model = CNN(features=(4,), dense=0, crop=4)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), train=False)
  # 20x20 after the crop, pooled to 10x10x4 before the logits.
  assert variables["params"]["Dense_0"]["kernel"].shape == (10 * 10 * 4, 10)
  border = np.zeros((2, 28, 28, 1), np.float32)
  border[1, :4] = border[1, :, -4:] = 1.0  # ink only where the crop removes it
  logits = model.apply(variables, border, train=False)
  np.testing.assert_allclose(logits[0], logits[1], atol=1e-6)
  with pytest.raises(ValueError, match=r"model\.crop: 14 pixels off each side leave nothing"):
    jax.eval_shape(lambda: CNN(crop=14).init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)),
                                             train=False))


@pytest.mark.parametrize("model", [
    CNN(features=(4, 8)), ResNet(stage_features=(4, 8)),
    CNN(features=(4, 8), kernel_size=5, padding="VALID", pool=False, dense=0)])
def test_matmul_convs_keep_parameters_and_outputs(model):
  """Sweeps swap the convolution (``conv=``): checkpoints and predictions must not change."""
  x = np.random.default_rng(1).uniform(size=(3, 28, 28, 1)).astype(np.float32)
  variables = model.init(jax.random.key(0), x, train=False)
  swapped = model.clone(conv=conv_as_matmul)
  assert (jax.tree.structure(jax.eval_shape(lambda: swapped.init(jax.random.key(0), x,
                                                                 train=False)))
          == jax.tree.structure(variables))
  np.testing.assert_allclose(swapped.apply(variables, x, train=False),
                             model.apply(variables, x, train=False), rtol=1e-4, atol=1e-5)
