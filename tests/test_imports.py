"""Imports run one way: each entry point, in a fresh interpreter, loads nothing it must not.

config -> data, models -> training -> run folder -> inference -> analysis | cli. Serving
(``jaxdigits.load``, predict, the demo) must stay light: no tfds, tensorboardX or tqdm.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 240

# Every module of a package, not just its __init__ (which may import lazily).
IMPORT_ALL = """
import importlib, pkgutil
for package in {packages!r}:
  module = importlib.import_module(package)
  for info in pkgutil.walk_packages(module.__path__, package + "."):
    importlib.import_module(info.name)
"""
SERVING = ("tensorflow_datasets", "tensorboardX", "tqdm", "jaxdigits.training")
LATER = ("jaxdigits.training", "jaxdigits.inference", "jaxdigits.analysis", "jaxdigits.sweeps",
         "jaxdigits.cli")

# name → (code run in a fresh interpreter, modules it must not have imported)
CASES = {
    "jaxdigits_alone": ("import jaxdigits", ("jax", "flax", "gradio", "tensorflow_datasets")),
    # data and models know nothing of what is built on them, nor of each other.
    "data": (IMPORT_ALL.format(packages=("jaxdigits.data",)), ("jaxdigits.models", *LATER)),
    "models": (IMPORT_ALL.format(packages=("jaxdigits.models",)), ("jaxdigits.data", *LATER)),
    "training": (IMPORT_ALL.format(packages=("jaxdigits.training",)),
                 ("matplotlib", "sklearn.metrics", "gradio", "jaxdigits.analysis",
                  "jaxdigits.inference", "jaxdigits.cli")),
    "load_shipped_model": ("import numpy as np, jaxdigits\n"
                           "jaxdigits.load().probabilities(np.zeros((1, 28, 28, 1), np.uint8))",
                           SERVING),
    # Not tqdm: gradio's huggingface_hub imports it for its own download bars.
    # Every inference module (the demo's gradio imports tqdm itself, see below).
    "inference": (IMPORT_ALL.format(packages=("jaxdigits.inference",)),
                  ("tensorflow_datasets", "tensorboardX", "jaxdigits.training",
                   "jaxdigits.analysis", "jaxdigits.cli")),
    "demo": ("import jaxdigits.inference.demo, jaxdigits.cli.demo",
             tuple(m for m in SERVING if m != "tqdm")),
    "predict_cli": ("import jaxdigits.cli.predict, jaxdigits.predict", SERVING),
}
REPORT = """
import json, sys
forbidden = {forbidden!r}
print(json.dumps([f for f in forbidden if f in sys.modules
                  or any(m.startswith(f + ".") for m in sys.modules)]))
"""


@pytest.fixture(scope="module")
def loaded() -> dict[str, subprocess.CompletedProcess]:
  """Runs every case at once, each in its own interpreter."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  procs = {name: subprocess.Popen([sys.executable, "-c", code + REPORT.format(forbidden=bad)],
                                  cwd=REPO, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True)
           for name, (code, bad) in CASES.items()}
  try:
    outputs = {name: p.communicate(timeout=TIMEOUT_S) for name, p in procs.items()}
    return {name: subprocess.CompletedProcess(p.args, p.returncode, *outputs[name])
            for name, p in procs.items()}
  finally:
    for p in procs.values():
      if p.poll() is None:
        os.killpg(p.pid, 9)  # a hung JAX process ignores SIGTERM


@pytest.mark.parametrize("name", sorted(CASES))
def test_imports_run_one_way(loaded, name):
  result = loaded[name]
  assert result.returncode == 0, result.stderr[-3000:]
  imported = json.loads(result.stdout.strip().splitlines()[-1])
  assert imported == [], f"{name} imported {imported} (forbidden: {CASES[name][1]})"
