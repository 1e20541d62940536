"""Model registry: ``config.model.name`` → a Flax module built from the other fields."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import ml_collections

from jaxdigits.models import classic
from jaxdigits.models.cnn import CNN
from jaxdigits.models.linear import Linear
from jaxdigits.models.mlp import MLP
from jaxdigits.models.resnet import ResNet

REGISTRY: dict[str, type[nn.Module]] = {"cnn": CNN, "linear": Linear, "mlp": MLP,
                                        "resnet": ResNet}
# Classic (non-gradient) models: name → their module's config checker; they are fitted by
# ``jaxdigits.training.classic_fit.fit`` (through ``train_and_evaluate``) instead of the SGD trainer.
CLASSIC: dict[str, Callable[[ml_collections.ConfigDict], None]] = dict(classic.CHECKERS)


def check(model: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the bad ``model.*`` field, for Flax and classic models alike."""
  if model.name in CLASSIC:
    CLASSIC[model.name](model)
  else:
    build(model)


def config_fields(name: str) -> dict[str, Any]:
  """The ``model.*`` fields (besides ``name``) that model ``name`` takes, with their defaults."""
  if name in CLASSIC:
    return dict(classic.FIELDS[name])
  # bn_axis_name and conv are set by the trainer and the sweep, not by configs.
  return {f.name: f.default for f in dataclasses.fields(REGISTRY[name])
          if f.name not in ("parent", "name", "bn_axis_name", "conv")}


def build(model: ml_collections.ConfigDict) -> nn.Module:
  """Builds ``REGISTRY[model.name]`` with the remaining fields as its attributes."""
  if model.name not in REGISTRY:
    raise ValueError(f"config field model.name: unknown model {model.name!r}; "
                     f"known: {sorted({*REGISTRY, *CLASSIC})}")
  cls = REGISTRY[model.name]
  fields = set(config_fields(model.name))
  kwargs = {k: v for k, v in model.items() if k != "name"}
  unknown = sorted(set(kwargs) - fields)
  if unknown:
    raise ValueError(f"config field model.{unknown[0]}: not an attribute of {cls.__name__}; "
                     f"it takes {sorted(fields)}")
  return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})
