"""The default convolutional network: fast on a CPU, > 99.3% on MNIST in a few epochs."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


def _pool(x: jax.Array) -> jax.Array:
  # 2x2 max-pool by reshape: XLA:CPU differentiates this faster than reduce_window.
  b, h, w, c = x.shape
  return x[:, :h // 2 * 2, :w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def space_to_depth(x: jax.Array, s: int) -> jax.Array:
  """Folds each s x s patch of pixels into channels: [B, H, W, C] → [B, H/s, W/s, s*s*C]."""
  if s == 1:
    return x
  b, h, w, c = x.shape
  x = x[:, :h // s * s, :w // s * s].reshape(b, h // s, s, w // s, s, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h // s, w // s, s * s * c)


def conv_as_matmul(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                   padding: str | Sequence[tuple[int, int]], *, lhs_dilation=None,
                   rhs_dilation=None, dimension_numbers=None, feature_group_count: int = 1,
                   precision=None) -> jax.Array:
  """``lax.conv_general_dilated`` for NHWC x HWIO as shifted copies and one matmul.

  For vmapped trials on XLA:CPU (``jaxdigits.sweep``): vmap turns a convolution whose
  kernels are batched too into a grouped convolution, which XLA:CPU ran 5.3x slower per
  trial than a lone trial's; this form becomes a batched matmul, 1.3x (cnn.py, 16 trials).
  Same maths as the convolution up to float rounding; strides, no dilation or groups.
  """
  del dimension_numbers  # Flax's Conv passes NHWC / HWIO, the only layout used here
  if (lhs_dilation and set(lhs_dilation) != {1}) or (rhs_dilation and set(rhs_dilation) != {1}) \
      or feature_group_count != 1:
    raise ValueError("conv_as_matmul: dilation and feature groups are not supported")
  kh, kw, cin, cout = rhs.shape
  sh, sw = window_strides
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], (kh, kw), window_strides, padding)
  x = jnp.pad(lhs, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  h, w = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
  patches = jnp.concatenate([x[:, i:i + (h - 1) * sh + 1:sh, j:j + (w - 1) * sw + 1:sw]
                             for i in range(kh) for j in range(kw)], axis=-1)
  return jnp.einsum("bhwk,ko->bhwo", patches, rhs.reshape(kh * kw * cin, cout),
                    precision=precision)


def check_space_to_depth(s: object) -> None:
  if not isinstance(s, int) or s < 1:
    raise ValueError("config field model.space_to_depth: must be a positive integer "
                     f"(1: no folding), got {s!r}")


class CNN(nn.Module):
  """conv-BN-ReLU blocks, each followed by a 2x2 max-pool, then a dense head.

  Without pooling and with VALID padding it is the all-convolution "M5" family (An et al.
  2020): 5x5 convolutions shrink 28x28 to 8x8 with no pooling, then one dense layer.

  Attributes:
    features: output channels of each block's convolutions, one entry per block.
    convs_per_block: conv-BN-ReLU layers in each block.
    kernel_size: side of the square convolution kernels.
    padding: 'SAME' keeps the size; 'VALID' trims kernel_size - 1 pixels per convolution.
    pool: a 2x2 max-pool after each block.
    dense: hidden units of the head; 0 flattens straight into the logits.
    dropout: dropout rate before the last dense layer (training only).
    space_to_depth: >1 folds each s x s pixel patch into channels before the first
      convolution (28x28x1 becomes 14x14x4 for 2); 1: no folding.
    crop: pixels trimmed from each side of the input before anything else (0: none).
    num_classes: number of output logits.
    dtype: 'float32', or 'bfloat16': the convolutions and dense layers compute in bfloat16
      (parameters, BatchNorm statistics, logits and loss stay float32), for GPUs and TPUs.
  """

  features: Sequence[int] = (32, 64)
  convs_per_block: int = 1
  kernel_size: int = 3
  padding: str = "SAME"
  pool: bool = True
  dense: int = 256
  dropout: float = 0.0
  # XLA:CPU's conv over one input channel at full size was the slowest layer; with a 2x2
  # space-to-depth stem the (32, 32) CNN of configs/fast.py trained 1.9x more images/s than the
  # (16, 32) one without it, and was more accurate after 2 epochs.
  space_to_depth: int = 1
  # MNIST-style digits sit in the central 20x20 box; trimming the border first makes every
  # layer of configs/fast.py cheaper (see its docstring for what it cost in accuracy).
  crop: int = 0
  num_classes: int = 10
  dtype: str = "float32"
  bn_axis_name: str | None = None  # set by the pmap strategy: statistics over all devices
  conv: Callable | None = None  # lax.conv_general_dilated or conv_as_matmul (set by sweeps)

  def __post_init__(self):
    check_space_to_depth(self.space_to_depth)
    if self.padding not in ("SAME", "VALID"):
      raise ValueError("config field model.padding: must be 'SAME' or 'VALID', got "
                       f"{self.padding!r}")
    if not isinstance(self.crop, int) or self.crop < 0:
      raise ValueError("config field model.crop: must be an integer >= 0 (pixels trimmed from "
                       f"each side), got {self.crop!r}")
    if not isinstance(self.kernel_size, int) or self.kernel_size < 1:
      raise ValueError("config field model.kernel_size: must be a positive integer, got "
                       f"{self.kernel_size!r}")
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if self.crop:
      if 2 * self.crop >= min(x.shape[1:3]):
        raise ValueError(f"config field model.crop: {self.crop} pixels off each side leave "
                         f"nothing of a {x.shape[1]}x{x.shape[2]} image; use a smaller crop")
      x = x[:, self.crop:x.shape[1] - self.crop, self.crop:x.shape[2] - self.crop]
    x = space_to_depth(x, self.space_to_depth)
    dtype = jnp.dtype(self.dtype)  # the compute dtype; param_dtype stays float32
    k = (self.kernel_size, self.kernel_size)
    for f in self.features:
      for _ in range(self.convs_per_block):
        if min(x.shape[1:3]) < self.kernel_size and self.padding == "VALID":
          raise ValueError(f"config field model.features: {len(self.features)} VALID "
                           f"{self.kernel_size}x{self.kernel_size} conv blocks shrink the "
                           "image to nothing; use fewer blocks, a smaller kernel_size or "
                           "padding='SAME'")
        x = nn.Conv(f, k, padding=self.padding, use_bias=False, dtype=dtype,
                    conv_general_dilated=self.conv)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                         axis_name=self.bn_axis_name if train else None)(x)
        x = nn.relu(x)
      if self.pool:
        x = _pool(x)
    x = x.reshape(x.shape[0], -1)
    if self.dense:
      x = nn.relu(nn.Dense(self.dense, dtype=dtype)(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=dtype)(x).astype(jnp.float32)
