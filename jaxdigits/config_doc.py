"""What every config field means, in one place; docs/config.md is generated from it.

  python -m jaxdigits.config_doc > docs/config.md

``FIELDS`` describes the sections of ``config.defaults()``. The ``model.*`` fields belong to
each model: the ``Attributes:`` section of a Flax model's docstring (models/cnn.py, mlp.py,
resnet.py, linear.py) and ``models.classic.FIELD_DOCS``. tests/test_docs.py fails when a
field has no description, or when docs/config.md differs from what this module prints.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from jaxdigits import config as config_lib
from jaxdigits import models
from jaxdigits.models import classic

_choices = lambda names: " / ".join(f"'{n}'" for n in names)

# Section by section, in the order a reader meets them; model.* is documented by the models.
FIELDS: dict[str, str] = {
    "seed": "seeds parameter initialisation, the order of training batches, dropout and the "
            "augmentation draws; the same seed on the same machine and software gives "
            "bit-identical parameters",
    "data.dataset": f"the dataset: {_choices(config_lib.DATASETS)}",
    "data.raw_dir": "folder with the original raw files (`DIR/mnist/*-ubyte.gz`, "
                    "`DIR/usps/zip.{train,test}.gz`); None: `$JAXDIGITS_RAW_DATA`, and "
                    "without it tfds downloads them",
    "data.tfds_dir": "where tfds keeps prepared datasets; None: `$JAXDIGITS_DATA_DIR` or "
                     "`~/.cache/jaxdigits/tfds`",
    "data.validation_fraction": "share of the official train split held out for validation: "
                                "its last examples in tfds' fixed order, whatever the seed",
    "data.mnist_style": "resize digits that are not 28x28 (USPS) MNIST-style: fitted into "
                        "20x20 keeping the aspect ratio, centred by centre of mass in 28x28, "
                        "so one model reads both datasets",
    "data.train_limit": "train on the first N examples of the training split only (0: all), "
                        "for quick runs",
    "data.label_fixes": "a train-split `label_issues.csv` (`python -m jaxdigits.evaluate "
                        "--label_issues --split=train --folds=5`): its `source_index` rows of "
                        "the raw train file are removed or relabelled in the training split "
                        "only (validation and test stay as published); needs the raw files; "
                        "None: train on the data as given",
    "data.label_fix_mode": f"what `data.label_fixes` does to its rows: "
                           f"{_choices(config_lib.LABEL_FIX_MODES)} (to the CSV's "
                           "`suggested` label)",
    "data.extra_train": "another dataset whose whole official train split is appended to "
                        "the training split only (e.g. `mnist` for USPS; needs "
                        "`data.mnist_style=True`); validation and test stay `data.dataset`'s "
                        "own; None: no extra data",
    "model.name": f"the model: Flax {_choices(sorted(models.REGISTRY))}, trained by SGD; "
                  f"classic {_choices(sorted(models.CLASSIC))}, fitted; its other fields are "
                  "listed per model below",
    "train.num_epochs": "passes over the training split",
    "train.batch_size": "the global batch: examples per optimizer step over all devices (it "
                        "must divide by the device count)",
    "train.learning_rate": "the peak learning rate of the schedule",
    "train.optimizer": "'adamw' (decoupled weight decay) or 'sgd' (Nesterov momentum, weight "
                       "decay added to the gradient)",
    "train.momentum": "SGD momentum (sgd only)",
    "train.weight_decay": "weight decay (AdamW's decoupled decay, or added to SGD's gradient)",
    "train.schedule": "'onecycle' (cosine one-cycle: warm up to the peak, then anneal), "
                      "'cosine' (linear warm-up, then cosine decay to 0) or 'constant'",
    "train.warmup_fraction": "share of all steps spent warming up (onecycle and cosine)",
    "train.label_smoothing": "label smoothing of the cross-entropy targets (0: none)",
    "train.max_shift": "random translation of each training digit, up to this many pixels",
    "train.max_rotation": "random rotation of each training digit, up to ± this many degrees",
    "train.max_scale": "random scaling of each training digit by a factor in 1 ± this",
    "train.steps_per_call": "train steps unrolled into one jitted call; on XLA:CPU 4 ran 2% "
                            "slower per step than 16 after a quarter of its compilation time "
                            "(docs/results.md)",
    "train.eval_batch_size": "batch of the validation and test passes (500 measured faster "
                             "than 1,000 on XLA:CPU)",
    "parallel.strategy": f"how a run uses its devices: {_choices(config_lib.STRATEGIES)}; "
                         "auto is 'sharded' with several devices, else 'single'",
    "parallel.distributed": "join a multi-host run: `jax.distributed.initialize` before "
                            "anything else",
    "parallel.coordinator_address": "host:port of process 0; None: "
                                    "`$JAX_COORDINATOR_ADDRESS`, else JAX's auto-detection "
                                    "(SLURM, Cloud TPU)",
    "parallel.num_processes": "processes in the run; None: `$JAX_NUM_PROCESSES`, else "
                              "auto-detected",
    "parallel.process_id": "this process's index; None: `$JAX_PROCESS_ID`, else auto-detected",
    "parallel.init_timeout_seconds": "seconds to wait for the coordinator before stopping "
                                     "with an error that names it",
    "checkpoint.every_epochs": "save a checkpoint every N epochs (and after the last one)",
    "checkpoint.keep": "keep the latest N checkpoints, plus the best on validation",
    "progress_bar": "show a progress bar while training",
}

# "name: description" in a Google-style Attributes section.
_ATTRIBUTE = re.compile(r"^(\w+): (.*)$")


def flat_defaults() -> dict[str, Any]:
  """Every field of ``config.defaults()`` as "section.field" → default value."""
  out = {}
  for key, value in config_lib.defaults().items():
    if hasattr(value, "items"):
      out.update({f"{key}.{k}": v for k, v in value.items()})
    else:
      out[key] = value
  return out


def model_docs(name: str) -> dict[str, str]:
  """Field → description for model ``name``, from its docstring or ``classic.FIELD_DOCS``."""
  if name in models.CLASSIC:
    return {f: classic.FIELD_DOCS[f] for f in classic.FIELDS[name] if f in classic.FIELD_DOCS}
  docs, field = {}, None
  lines = inspect.getdoc(models.REGISTRY[name]).splitlines()
  start = lines.index("Attributes:") + 1 if "Attributes:" in lines else len(lines)
  for line in lines[start:]:
    if not line.startswith("  "):
      break
    match = _ATTRIBUTE.match(line.strip()) if not line.startswith("    ") else None
    if match:
      field = match.group(1)
      docs[field] = match.group(2)
    elif field:
      docs[field] += " " + line.strip()
  return docs


def problems() -> list[str]:
  """Fields without a description, and descriptions of fields that no longer exist."""
  out = [f"{f}: no description in jaxdigits/config_doc.py FIELDS"
         for f in flat_defaults() if not FIELDS.get(f)]
  out += [f"{f}: described in FIELDS, but config.defaults() has no such field"
          for f in FIELDS if f not in flat_defaults()]
  for name in [*models.REGISTRY, *models.CLASSIC]:
    fields, docs = models.config_fields(name), model_docs(name)
    where = ("models.classic.FIELD_DOCS" if name in models.CLASSIC else
             f"the Attributes section of {_source(name)}")
    out += [f"model.{f} (model {name}): no description in {where}"
            for f in fields if not docs.get(f)]
    out += [f"model.{f} (model {name}): described in {where}, but the model has no such field"
            for f in docs if f not in fields and name not in models.CLASSIC]
  out += [f"models.classic.FIELD_DOCS describes {f}, which no classic model takes"
          for f in classic.FIELD_DOCS if not any(f in fs for fs in classic.FIELDS.values())]
  return out


def _value(value: Any) -> str:
  return "`None`" if value is None else f"`{value!r}`"


def _table(rows: list[tuple[str, Any, str]]) -> list[str]:
  out = ["| field | default | meaning |", "| --- | --- | --- |"]
  for field, default, doc in rows:
    doc = (doc[:1].upper() + doc[1:]).rstrip(".").replace("|", "/")
    out.append(f"| `{field}` | {_value(default)} | {doc}. |")
  return out


def _source(name: str) -> str:
  module = models.CLASSIC[name].__module__ if name in models.CLASSIC else \
      models.REGISTRY[name].__module__
  return module.replace(".", "/") + ".py"


def markdown() -> str:
  """docs/config.md: every field, its default and its meaning."""
  defaults, resumable = flat_defaults(), set(config_lib.RESUMABLE_CHANGES)
  lines = ["# Config fields", "",
           "Generated from the code by `python -m jaxdigits.config_doc > docs/config.md` "
           "(descriptions: `jaxdigits/config_doc.py` and each model's own file); "
           "tests/test_docs.py checks that it is current and that every field is described.",
           "",
           "A config file (`configs/*.py`) starts from `jaxdigits.config.defaults()` and "
           "changes what its recipe needs; any field can be set on the command line as "
           "`--config.<section>.<field>=<value>`. `jaxdigits.config.validate` refuses a bad value "
           "before any work, naming the field. Fields marked *resumable* may change when a "
           "run resumes in the same workdir; any other change is refused there."]
  sections: dict[str, list[tuple[str, Any, str]]] = {}
  for field, doc in FIELDS.items():
    section = field.split(".")[0] if "." in field else "top level"
    note = ". *Resumable*" if field in resumable else ""
    sections.setdefault(section, []).append((field, defaults.get(field), doc + note))
  for section, rows in sections.items():
    lines += ["", f"## {section}", "", *_table(rows)]
    if section == "model":
      lines += ["", "The other `model.*` fields depend on `model.name`; a field a config "
                "leaves out takes the model's default below (`configs/*.py` set their own)."]
      lines += _model_sections()
  return "\n".join(lines) + "\n"


def _model_sections() -> list[str]:
  lines = []
  for name in [*models.REGISTRY, *models.CLASSIC]:
    docs = model_docs(name)
    kind = "classic, fitted" if name in models.CLASSIC else "Flax, trained by SGD"
    rows = [(f"model.{f}", default, docs.get(f, ""))
            for f, default in models.config_fields(name).items()]
    lines += ["", f"### `model.name = '{name}'` ({kind}; `{_source(name)}`)", "", *_table(rows)]
  return lines


if __name__ == "__main__":
  print(markdown(), end="")
