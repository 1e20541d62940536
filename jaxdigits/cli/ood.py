"""Fit the not-a-digit detector a model carries, so predict and the demo can refuse non-digits.

  python -m jaxdigits.ood --workdir=RUN [--steps=3000] [--nondigits=40000] [--seed=0]
  python -m jaxdigits.ood --bundle=BUNDLE --out=NEW_BUNDLE [...]

A small CNN learns MNIST-style digits (the run's train split, plus redrawn copies) against
generated non-digits (``jaxdigits.data.nondigits``: letters, symbols, shapes, scribbles,
textures); its threshold is set so that ``--target_rejection`` of the VALIDATION digits are
refused. ``--workdir`` writes ``RUN/not_digit/`` (``python -m jaxdigits.export`` carries it
into the bundle); ``--bundle`` writes a copy of the bundle with the detector added, every
other file byte for byte the same. Test digits are never read.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from absl import flags

from jaxdigits import bundle, config as config_lib
from jaxdigits.cli import runner
from jaxdigits.data import mnist_style, pipeline
from jaxdigits.errors import ConfigError
from jaxdigits.inference import load as load_lib, restore
from jaxdigits.models import classic, nondigit
from jaxdigits.training import ood_fit


def _define(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("workdir", None, "a training run (Flax or classic): writes "
                      "RUN/not_digit/", flag_values=fv)
  flags.DEFINE_string("bundle", None, "a bundle to copy with a detector added (needs --out)",
                      flag_values=fv)
  flags.DEFINE_string("out", None, "with --bundle: the new bundle folder", flag_values=fv)
  flags.DEFINE_integer("steps", 3000, "training steps (batches of 256)", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("nondigits", 40_000, "generated non-digits to train on",
                       lower_bound=100, flag_values=fv)
  flags.DEFINE_integer("redrawn", 20_000, "redrawn train digits added (other pens)",
                       lower_bound=0, flag_values=fv)
  flags.DEFINE_integer("seed", 0, "seed of the generator and the training", flag_values=fv)
  flags.DEFINE_float("target_rejection", 0.003, "share of validation digits the threshold "
                     "refuses", lower_bound=0.0001, upper_bound=0.2, flag_values=fv)
  flags.DEFINE_string("features", ",".join(map(str, nondigit.FEATURES)), "the detector's "
                      "three conv widths, comma-separated", flag_values=fv)
  flags.DEFINE_integer("train_limit", None, "use only this many train digits (tests)",
                       lower_bound=100, flag_values=fv)


def digits(config, train_limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(train, validation) uint8 MNIST-style digits of a model's dataset, split as it was."""
  data = config.data
  if config_lib.image_shape(data)[:2] != (mnist_style.MNIST_SIZE,) * 2:
    raise ConfigError(f"the model reads {data.dataset} digits as stored, not 28x28 "
                      f"MNIST-style images: a not-a-digit detector guards models that read "
                      f"new images (train with --config.data.mnist_style=True)")
  cut = config_lib.validation_start(data.dataset, data.validation_fraction)
  kw = dict(raw_dir=data.get("raw_dir"), data_dir=data.get("tfds_dir"))
  train = pipeline.load_tfds(data.dataset, "train", stop=min(train_limit or cut, cut), **kw)
  val = pipeline.load_tfds(data.dataset, "train", start=cut, **kw)
  fix = lambda x: x if x.shape[1:3] == (28, 28) else mnist_style.mnist_style_batch(x)
  return fix(train.images), fix(val.images)


def _fit(fv: flags.FlagValues, _: list[str]) -> None:
  if bool(fv.workdir) == bool(fv.bundle) or bool(fv.bundle) != bool(fv.out):
    raise ConfigError("give --workdir=RUN, or --bundle=BUNDLE and --out=NEW_BUNDLE")
  try:
    features = tuple(int(f) for f in fv.features.split(","))
  except ValueError:
    raise ConfigError(f"--features={fv.features}: give three integers, e.g. 24,48,48") from None
  if len(features) != 3 or not all(0 < f <= 256 for f in features):
    raise ConfigError(f"--features={fv.features}: give three widths in 1..256")
  if fv.bundle:
    bundle.verify(fv.bundle)
    config = bundle.read_config(Path(fv.bundle))
  else:
    kind, root = load_lib.locate(fv.workdir)
    if kind is load_lib.Kind.BUNDLE:
      raise ConfigError(f"--workdir={fv.workdir} is a bundle: use --bundle and --out")
    config = (restore.read_run(root)[0] if kind is load_lib.Kind.FLAX
              else classic.load(root)[0])
  train, val = digits(config, fv.train_limit)
  kwargs = dict(seed=fv.seed, nondigit_count=fv.nondigits, redrawn=fv.redrawn,
                steps=fv.steps, target_rejection=fv.target_rejection, features=features)
  if fv.workdir:
    folder = root / nondigit.FOLDER
    meta = ood_fit.fit_and_save(train, val, folder, **kwargs)
  else:
    with tempfile.TemporaryDirectory() as tmp:
      folder = Path(tmp) / nondigit.FOLDER
      meta = ood_fit.fit_and_save(train, val, folder, **kwargs)
      bundle.add_detector(fv.bundle, folder, fv.out)
    folder = Path(fv.out) / nondigit.FOLDER
  v = meta["validation"]
  print(f"wrote {folder}: threshold {meta['threshold']:.4f}; validation digits rejected "
        f"{v['digits_rejected']:.2%}, validation non-digits caught {v['nondigits_caught']:.2%} "
        f"({meta['fit_seconds']:.0f} s)")


COMMAND = runner.Command("ood", __doc__, _define, _fit)
main = COMMAND.main
run = COMMAND.run

if __name__ == "__main__":
  run()
