"""The GPU record, prepared for one H200 session: accuracy chosen on validation, bf16 against
fp32, and time to 99% with compilation (issue #23).

Parts (``--part``, comma-separated or ``all``):

- ``accuracy``: every candidate (``configs/m5.py``, ``configs/best.py``) trained as seeds
  0..4 through the sweep machinery (``jaxdigits.sweeps.runner.run_sweep``, a seeds grid; M5
  one seed after another as ``--novmap``, best.py vmapped), with
  ``data.validation_fraction=0.2``: 12,000 validation digits, since at the default 6,000 one
  error is 0.017 points and the candidates' validation means differed by 0.03 points (H200,
  docs/results.md), two errors. The candidate with the higher validation mean is chosen;
  each seed's validation and test, the test mean and spread, and the ensemble of the chosen
  candidate's seeds (``jaxdigits.load([...])``, as ``python -m jaxdigits.evaluate --workdir A
  B C``) are reported. Test is only reported, never used to choose.
- ``precision``: ``configs/m5.py`` (the recipe whose convolutions dominate) for seeds 0 and 1
  with ``model.dtype`` 'float32' and 'bfloat16': steps/s (median over epochs after the first,
  which compiles) and test accuracy. The fp32 runs are the accuracy part's when both run in
  one call.
- ``speed``: ``configs/fast.py`` through benchmarks/time_to_99.py's jaxdigits runner (a fresh
  ``python -m jaxdigits.main`` process that pays its compilation), fp32 and bf16:
  ``train_seconds`` (time to 99% when test >= 99%) and ``compile_seconds``.

Each figure is printed as it comes, and with ``$OUT`` set the JSON of every figure so far is
rewritten to ``$OUT/gpu_record.json`` after each one, so a call stopped at its limit still
returns what it measured. Last line: ``chosen=… single_mean=… single_std=… ensemble=…
fp32_steps_s=… bf16_steps_s=… bf16_speedup=… fp32_test=… bf16_test=… time_to_99_s=…
compile_s=… bf16_time_to_99_s=… bf16_compile_s=…`` (``nan`` for a part not run).
``--smoke``: the same path on 1,024 training digits, one epoch, two seeds, narrow networks
(seeds vmapped, one bf16 precision seed, fast.py in bf16 only, to keep it short).

Setup, once, on the development machine (the device machine reaches no registry; the image
has JAX 0.11.2 with CUDA, Flax, Optax, Orbax, scikit-learn, matplotlib, PyYAML, but not the
packages below; ``../shared`` does not travel, so the raw MNIST files are copied in)::

  echo /.whl/ >> .git/info/exclude; echo /.gpudata/ >> .git/info/exclude
  mkdir -p .gpudata && cp -r /work/shared/data/mnist .gpudata/
  python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \\
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \\
    --platform manylinux2014_x86_64 -d .whl ml-collections==1.1.0 \\
    tensorflow-datasets==4.9.10 array-record==0.8.6 importlib-resources==7.1.0 \\
    tensorboardX==2.6.5 optuna==5.1.0 alembic==1.20.1 sqlalchemy==2.1.9 colorlog==6.12.0 \\
    dm-tree==0.1.10 immutabledict==4.3.1 simple-parsing==0.1.9 docstring-parser==0.18.0 \\
    termcolor==3.3.0 toml==0.10.2 tensorflow-metadata==1.21.0 \\
    googleapis-common-protos==1.76.0 mako==1.4.3
  python -m pip wheel -q --no-deps -w .whl promise==2.3   # sdist only: build its wheel here

(about 15 MiB of wheels and 11 MiB of MNIST: within the 64 MiB that travels). Then two
device calls (``run`` with ``carry=[".whl", ".gpudata"]``, ``timeout_s=600``), each
starting with the same prefix::

  P='python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 JAXDIGITS_RAW_DATA=$PWD/.gpudata
  JAXDIGITS_DATA_DIR=/tmp/tfds JAX_COMPILATION_CACHE_DIR=/tmp/jaxcache'
  call 1: $P && python3 benchmarks/gpu_record.py --part=accuracy
  call 2: $P && python3 benchmarks/gpu_record.py --part=precision,speed

Budget, from docs/results.md's H200 figures (0.75 s per M5 epoch of 54,000 digits, 32-57 s of
``train_seconds`` per M5 seed, a 19.6 s first M5 compilation then 2-3 s from the cache;
best.py ~1 s per epoch for eight vmapped seeds after a ~32 s first epoch; fast.py 8-14 s of
``train_seconds``, ~29 s a process): about a minute to start the machine, 20 s to install, 30 s
to prepare MNIST; call 1 ~5.5 min (M5 5 x ~40 s plus validation and checkpoints ~230 s,
best.py ~70 s, tests and the ensemble ~15 s); call 2 ~4 min (M5 fp32 and bf16 x 2 seeds ~170
s, fast.py twice ~60 s). Together about 12 minutes of the 15. If call 1 runs out, rerun it
with ``--seeds=5 --candidates=m5``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _smoke
import time_to_99

REPO = Path(__file__).resolve().parents[1]
CANDIDATES = {"m5": "configs/m5.py", "best": "configs/best.py"}
VMAP = {"m5": False, "best": True}  # M5 one seed after another, as docs/results.md ran it
VALIDATION_FRACTION = 0.2
PRECISION_RECIPE = "m5"
PARTS = ("accuracy", "precision", "speed")


class Record:
  """Every figure so far; rewritten to ``$OUT/gpu_record.json`` after each one."""

  def __init__(self, out: str | None):
    self.figures: dict[str, Any] = {}
    self.path = Path(out) / "gpu_record.json" if out else None

  def add(self, key: str, value: Any) -> None:
    self.figures[key] = value
    if self.path is not None:
      self.path.write_text(json.dumps(self.figures, indent=1, default=str))


def _config(name: str, smoke: bool, dtype: str = "float32"):
  from jaxdigits import config as config_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.load_file(REPO / CANDIDATES[name])
  config.data.validation_fraction = VALIDATION_FRACTION
  config.progress_bar = False
  config.model.dtype = dtype
  return _smoke.shrink(config) if smoke else config


def train_seeds(name: str, seeds: list[int], workdir: Path, smoke: bool,
                dtype: str = "float32") -> list[dict[str, Any]]:
  """Trains ``seeds`` of candidate ``name`` as one seeds sweep; per seed: validation, test,
  steps/s, seconds. Test is read here only to be reported."""
  from jaxdigits import records  # pylint: disable=g-import-not-at-top
  from jaxdigits.sweeps import runner  # pylint: disable=g-import-not-at-top
  config = _config(name, smoke, dtype)
  start = time.perf_counter()
  # --smoke vmaps every candidate's seeds: one compilation instead of one per seed.
  rows = runner.run_sweep(config, {"method": "grid", "parameters": {"seed": seeds}}, workdir,
                          vmap=VMAP[name] or smoke)
  wall = time.perf_counter() - start
  out = []
  for row in rows:
    trial = workdir / row["trial"]
    log = records.read(trial)
    later = [r["epoch_seconds"] for r in log.epochs[1:]] or [log.epochs[0]["epoch_seconds"]]
    steps = log.final["train_examples"] // config.train.batch_size
    out.append({"seed": row["seed"], "dir": str(trial), "val": row["val_accuracy"],
                "test": _test_accuracy([trial]), "steps_s": steps / statistics.median(later),
                "train_s": log.final["train_seconds"],
                "compile_s": log.final["compile_seconds"]})
    print(f"  {name} {dtype} seed {row['seed']}: validation {out[-1]['val']:.4f}, test "
          f"{out[-1]['test']:.4f}, {out[-1]['steps_s']:.0f} steps/s, train_seconds "
          f"{out[-1]['train_s']:.1f} (compile {out[-1]['compile_s']:.1f})", flush=True)
  print(f"  {name} {dtype}: {len(seeds)} seeds in {wall:.0f} s", flush=True)
  return out


def _test_accuracy(dirs: list[Path]) -> float:
  """Test accuracy of one run, or of several as ``jaxdigits.load``'s ensemble."""
  import jaxdigits  # pylint: disable=g-import-not-at-top
  from jaxdigits.analysis import evaluate  # pylint: disable=g-import-not-at-top
  predictor = jaxdigits.load([str(d) for d in dirs] if len(dirs) > 1 else str(dirs[0]))
  data = predictor.config.data
  test = evaluate.load_eval_split(predictor, data.dataset, "test", raw_dir=data.raw_dir,
                                  data_dir=data.tfds_dir)
  return evaluate.accuracy(predictor.logits(test.images), test.labels)


def _spread(values: list[float]) -> tuple[float, float]:
  return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def accuracy(args, record: Record, root: Path, trained: dict) -> None:
  """Every candidate's seeds; the one best on validation mean, its seeds and ensemble."""
  seeds = list(range(args.seeds))
  means = {}
  for name in args.candidates.split(","):
    runs = trained[(name, "float32")] = train_seeds(name, seeds, root / name, args.smoke)
    val_mean, val_std = _spread([r["val"] for r in runs])
    test_mean, test_std = _spread([r["test"] for r in runs])
    means[name] = val_mean
    record.add(f"accuracy.{name}", {"seeds": runs, "val_mean": val_mean, "val_std": val_std,
                                    "test_mean": test_mean, "test_std": test_std})
    print(f"{name}: validation {val_mean:.4%} ± {val_std:.4%}, test {test_mean:.4%} ± "
          f"{test_std:.4%} ({len(runs)} seeds)", flush=True)
  chosen = max(means, key=means.get)
  runs = trained[(chosen, "float32")]
  ensemble = _test_accuracy([Path(r["dir"]) for r in runs])
  summary = record.figures[f"accuracy.{chosen}"]
  record.add("chosen", chosen)
  record.add("single_mean", summary["test_mean"])
  record.add("single_std", summary["test_std"])
  record.add("ensemble", ensemble)
  print(f"chosen on validation: {chosen}; test {summary['test_mean']:.4%} ± "
        f"{summary['test_std']:.4%} single, {ensemble:.4%} ensemble of {len(runs)}", flush=True)


def precision(args, record: Record, root: Path, trained: dict) -> None:
  """One recipe's seeds in float32 and bfloat16: steps/s and test accuracy."""
  seeds = list(range(args.precision_seeds))
  figures = {}
  for dtype in ("float32", "bfloat16"):
    runs = [r for r in trained.get((PRECISION_RECIPE, dtype), []) if r["seed"] in seeds]
    if len(runs) < len(seeds):
      runs = train_seeds(PRECISION_RECIPE, seeds, root / f"precision_{dtype}", args.smoke, dtype)
    figures[dtype] = {"steps_s": statistics.median(r["steps_s"] for r in runs),
                      "test": statistics.mean(r["test"] for r in runs), "seeds": runs}
    record.add(f"precision.{dtype}", figures[dtype])
    print(f"{PRECISION_RECIPE} {dtype}: {figures[dtype]['steps_s']:.0f} steps/s, test "
          f"{figures[dtype]['test']:.4%} (mean of seeds {seeds})", flush=True)
  record.add("fp32_steps_s", figures["float32"]["steps_s"])
  record.add("bf16_steps_s", figures["bfloat16"]["steps_s"])
  record.add("bf16_speedup", figures["bfloat16"]["steps_s"] / figures["float32"]["steps_s"])
  record.add("fp32_test", figures["float32"]["test"])
  record.add("bf16_test", figures["bfloat16"]["test"])


def speed(args, record: Record, root: Path) -> None:
  """configs/fast.py's time to 99% in a fresh process, compilation included, fp32 and bf16."""
  overrides = _smoke.flags() if args.smoke else []
  # --smoke times bf16 only: benchmarks/time_to_99.py --smoke already runs this fp32 path.
  for dtype, prefix in (("float32", ""), ("bfloat16", "bf16_"))[1 if args.smoke else 0:]:
    config = root / f"fast_{dtype}.py"  # main's --config.model.dtype needs the field in the file
    config.write_text("from jaxdigits.config import load_file\n\n\ndef get_config():\n"
                      f"  config = load_file({str(REPO / 'configs/fast.py')!r})\n"
                      f"  config.model.dtype = {dtype!r}\n  return config\n")
    result = time_to_99.run_jaxdigits(str(config), args.target, overrides)
    log_seconds = result["seconds"]
    record.add(f"speed.{dtype}", result)
    record.add(f"{prefix}time_to_99_s", log_seconds)
    record.add(f"{prefix}compile_s", result["compile_seconds"])
    print(f"fast.py {dtype}: time to {args.target:.0%} {log_seconds:.2f} s (compile "
          f"{result['compile_seconds']:.2f} s), test {result['test_accuracy']:.4f}", flush=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--part", default="all", help="accuracy,precision,speed or all")
  parser.add_argument("--seeds", type=int, default=5, help="seeds per accuracy candidate")
  parser.add_argument("--candidates", default="m5,best", help=f"of {sorted(CANDIDATES)}")
  parser.add_argument("--precision_seeds", type=int, default=2)
  parser.add_argument("--target", type=float, default=0.99)
  parser.add_argument("--smoke", action="store_true", help="tiny data, one epoch, two seeds")
  args = parser.parse_args()
  parts = PARTS if args.part == "all" else tuple(args.part.split(","))
  if set(parts) - set(PARTS) or set(args.candidates.split(",")) - set(CANDIDATES):
    parser.error(f"--part takes {PARTS} or all; --candidates {sorted(CANDIDATES)}")
  if args.smoke:
    args.seeds, args.precision_seeds = 2, 1
  import jax  # pylint: disable=g-import-not-at-top
  print(f"devices: {jax.devices()}", flush=True)
  record, trained = Record(os.environ.get("OUT")), {}
  record.add("devices", [str(d) for d in jax.devices()])
  with tempfile.TemporaryDirectory() as tmp:
    root = Path(tmp)
    if "accuracy" in parts:
      accuracy(args, record, root, trained)
    if "precision" in parts:
      precision(args, record, root, trained)
    if "speed" in parts:
      speed(args, record, root)
  keys = ("chosen", "single_mean", "single_std", "ensemble", "fp32_steps_s", "bf16_steps_s",
          "bf16_speedup", "fp32_test", "bf16_test", "time_to_99_s", "compile_s",
          "bf16_time_to_99_s", "bf16_compile_s")
  print(" ".join(f"{k}={_fmt(record.figures.get(k, math.nan))}" for k in keys))


def _fmt(v: Any) -> str:
  return f"{v:.4f}" if isinstance(v, float) else str(v)


if __name__ == "__main__":
  sys.exit(main())
