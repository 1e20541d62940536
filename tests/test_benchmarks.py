"""Every benchmark still runs: each ``benchmarks/*.py --smoke`` exits 0 and ends in key=value.

Smoke runs take the benchmarks' own code path on tiny data, so a library change that breaks
one fails here instead of rotting unseen; their figures are not checked.
"""

from __future__ import annotations

import concurrent.futures
import re
import subprocess
import sys

import pytest

from conftest import REPO

BENCHMARKS = sorted(p.name for p in (REPO / "benchmarks").glob("*.py")
                    if not p.name.startswith("_"))
PAIR = re.compile(r"[\w.]+=\S+")


def test_every_benchmark_is_covered():
  assert {"input_pipeline.py", "time_to_99.py", "train_cnn.py"} <= set(BENCHMARKS)
  for name in BENCHMARKS:
    assert "--smoke" in (REPO / "benchmarks" / name).read_text(), f"{name} has no --smoke"


@pytest.fixture(scope="module")
def smoke_runs(data_env) -> dict[str, subprocess.CompletedProcess]:
  """Every ``--smoke`` run, two at a time: each is a fresh interpreter that imports JAX and
  compiles (3-40 s apiece on 2 cores), mostly on one core, so pairs take half the time."""
  def run(name):
    return subprocess.run([sys.executable, f"benchmarks/{name}", "--smoke"], cwd=REPO,
                          env=data_env, capture_output=True, text=True, timeout=600, check=False)
  with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
    return dict(zip(BENCHMARKS, pool.map(run, BENCHMARKS)))


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHMARKS)
def test_smoke_run_ends_in_key_value_pairs(name, smoke_runs):
  proc = smoke_runs[name]
  assert proc.returncode == 0, (
      f"{name} --smoke failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
  lines = proc.stdout.strip().splitlines()
  assert lines, f"{name} printed nothing"
  pairs = lines[-1].split()
  assert pairs and all(PAIR.fullmatch(p) for p in pairs), (
      f"{name}: last line is not key=value pairs: {lines[-1]!r}")
