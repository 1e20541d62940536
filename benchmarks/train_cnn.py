"""The shipped CNN recipes end to end, as a user runs them: accuracy, wall time, peak memory.

  JAXDIGITS_RAW_DATA=DIR python benchmarks/train_cnn.py [--smoke] [CONFIG ...]

Each config runs as ``python -m jaxdigits.main`` in a fresh workdir; wall time covers the
whole process (start-up, data loading, compilation, training, evaluation). Last line:
``<name>_test_accuracy=… <name>_wall_s=… …`` for each config (default: configs/cnn.py and
configs/usps_cnn.py). ``--smoke``: configs/cnn.py only, one epoch of a narrow CNN on 1,024
digits.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _smoke
from jaxdigits import records

REPO = Path(__file__).resolve().parents[1]


def run(config: str, overrides: list[str]) -> dict[str, float]:
  with tempfile.TemporaryDirectory() as workdir:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "jaxdigits.main", f"--config={config}",
                             f"--workdir={workdir}", "--config.progress_bar=False", *overrides],
                            cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
      sys.exit(f"{config} failed")
    final = records.read(workdir).final
  peak_mib = usage.ru_maxrss / 1024  # KiB on Linux
  return {"test_accuracy": final["test_accuracy"], "wall_s": wall, "peak_rss_mib": peak_mib}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("configs", nargs="*", default=["configs/cnn.py", "configs/usps_cnn.py"])
  parser.add_argument("--smoke", action="store_true", help="configs/cnn.py, tiny: a quick check")
  args = parser.parse_args()
  configs, overrides = (["configs/cnn.py"], _smoke.flags()) if args.smoke else (args.configs, [])
  print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
  results = {Path(c).stem: run(c, overrides) for c in configs}
  print(f"{'config':12s} {'test acc':>9s} {'wall s':>8s} {'peak RSS MiB':>13s}")
  for name, r in results.items():
    print(f"{name:12s} {r['test_accuracy']:9.4f} {r['wall_s']:8.1f} {r['peak_rss_mib']:13.0f}")
  print(" ".join(f"{name}_test_accuracy={r['test_accuracy']:.4f} {name}_wall_s={r['wall_s']:.1f}"
                 for name, r in results.items()))


if __name__ == "__main__":
  main()
