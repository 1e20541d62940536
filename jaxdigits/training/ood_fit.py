"""Fitting the not-a-digit detector: digits against generated non-digits (outlier exposure).

Digits are the dataset's train split, plus redrawn copies (thicker and thinner strokes,
small turns and shears, through ``mnist_style`` again) so that digits drawn with another
pen are not taken for outliers; non-digits come from ``data.nondigits`` (train split of the
generator). The threshold is the score below which ``1 - target_rejection`` of the
VALIDATION digits fall; the validation non-digits (the generator's validation split) report
what it catches. Test digits and the generator's held-out split are never read here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image, ImageFilter

from jaxdigits.data import mnist_style, nondigits
from jaxdigits.models import nondigit


def redrawn_digits(images: np.ndarray, seed: int) -> np.ndarray:
  """Each digit redrawn: stroke made thicker or thinner, turned, sheared, re-centred."""
  rng = np.random.default_rng([seed, 0x64696769])
  out = np.empty_like(images)
  for k, image in enumerate(images):
    im = Image.fromarray(image[..., 0]).resize((56, 56), Image.Resampling.BILINEAR)
    pen = rng.integers(0, 4)  # as is, thicker, much thicker, thinner
    if pen in (1, 2):
      im = im.filter(ImageFilter.MaxFilter(3 if pen == 1 else 5))
    elif pen == 3:
      im = im.filter(ImageFilter.MinFilter(3))
    angle, shear = rng.uniform(-15, 15), rng.uniform(-0.25, 0.25)
    im = im.rotate(angle, Image.Resampling.BILINEAR).transform(
        im.size, Image.Transform.AFFINE, (1, shear, -shear * 28, 0, 1, 0),
        Image.Resampling.BILINEAR)
    ink = np.asarray(im, np.float32)
    out[k, ..., 0] = mnist_style.mnist_style(ink) if ink.max() > 0 else image[..., 0]
  return out


def _train(digits: np.ndarray, others: np.ndarray, seed: int, steps: int, batch: int,
           features: tuple[int, ...]) -> Any:
  model = nondigit.NotDigitNet(features)
  key = jax.random.key(seed)
  params = model.init(key, jnp.zeros((1, 28, 28, 1)))["params"]
  schedule = optax.cosine_decay_schedule(3e-3, steps)
  tx = optax.adam(schedule)
  opt = tx.init(params)
  x = jnp.asarray(np.concatenate([digits, others]))
  y = jnp.asarray(np.r_[np.zeros(len(digits)), np.ones(len(others))], jnp.float32)
  n_digits = len(digits)

  @jax.jit
  def step(params, opt, key):
    # Half digits, half non-digits per batch, whatever the two counts are.
    k1, k2 = jax.random.split(key)
    idx = jnp.concatenate([jax.random.randint(k1, (batch // 2,), 0, n_digits),
                           jax.random.randint(k2, (batch // 2,), n_digits, len(y))])

    def loss_fn(p):
      z = nondigit.logits(features, p, x[idx])
      return optax.sigmoid_binary_cross_entropy(z, y[idx]).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt, loss

  for k in range(steps):
    params, opt, loss = step(params, opt, jax.random.fold_in(key, k))
  del loss
  return jax.device_get(params)


def scores(features: tuple[int, ...], params: Any, images: np.ndarray,
           batch: int = 2000) -> np.ndarray:
  """Not-a-digit scores in [0, 1] (sigmoid of the logit) for uint8 images [N, 28, 28, 1]."""
  fn = jax.jit(lambda p, x: jax.nn.sigmoid(nondigit.logits(features, p, x)))
  return np.concatenate([np.asarray(fn(params, images[i:i + batch]))
                         for i in range(0, len(images), batch)])


def fit(train_digits: np.ndarray, val_digits: np.ndarray, *, seed: int = 0,
        nondigit_count: int = 40_000, redrawn: int = 20_000, steps: int = 4000,
        batch: int = 256, target_rejection: float = 0.003,
        features: tuple[int, ...] = nondigit.FEATURES) -> tuple[Any, dict[str, Any]]:
  """(params, meta): a trained detector and its threshold, chosen on validation digits.

  ``meta`` (written as ``detector.json``) records the threshold, the widths, the seeds and
  sizes used, and the validation figures: share of validation digits rejected and of
  validation non-digits caught, overall and per family.
  """
  start = time.time()
  rng = np.random.default_rng(seed)
  pick = rng.choice(len(train_digits), min(redrawn, len(train_digits)), replace=False)
  digits = np.concatenate([train_digits, redrawn_digits(train_digits[pick], seed)])
  others, _ = nondigits.generate(nondigit_count, seed, "train")
  params = _train(digits, others, seed, steps, batch, features)
  val_scores = scores(features, params, val_digits)
  threshold = float(np.quantile(val_scores, 1 - target_rejection))
  threshold = float(np.clip(threshold, 1e-6, 1 - 1e-6))
  count = min(2000, max(200, nondigit_count // 20))  # 2000 for the shipped fit
  val_others, family = nondigits.generate(count, seed, "validation")
  caught = scores(features, params, val_others) > threshold
  meta = {
      "threshold": threshold, "features": list(features),
      "score": "sigmoid of the detector's logit; above the threshold: not a digit",
      "chosen_on": {"digits": f"validation split ({len(val_digits)} digits), "
                              f"{target_rejection:.2%} of them above the threshold",
                    "nondigits": f"jaxdigits.data.nondigits validation split, seed {seed}"},
      "trained_on": {"digits": len(digits), "redrawn": len(pick), "nondigits": nondigit_count,
                     "steps": steps, "batch": batch, "seed": seed},
      "validation": {
          "digits_rejected": float(np.mean(val_scores > threshold)),
          "nondigits_caught": float(caught.mean()),
          "nondigits_caught_by_family": {name: float(caught[family == i].mean())
                                         for i, name in enumerate(nondigits.FAMILIES)}},
      "fit_seconds": round(time.time() - start, 1),
  }
  return params, meta


def fit_and_save(train_digits: np.ndarray, val_digits: np.ndarray, folder: Path,
                 **kwargs: Any) -> dict[str, Any]:
  """``fit``, then the detector written to ``folder`` (``nondigit.save``); returns its meta."""
  params, meta = fit(train_digits, val_digits, **kwargs)
  nondigit.save(folder, params, meta)
  return meta
