"""Data-parallel strategies, multi-host training and device-count-free checkpoints.

Simulated CPU devices (XLA_FLAGS) need a process per device count, so the trainings run in
bounded subprocesses (tests/parallel_worker.py) and are compared here, on one device.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from conftest import REPO, saved_state
from jaxdigits.training import engine as train
from parallel_worker import parallel_config

WORKER = REPO / "tests" / "parallel_worker.py"
# Strategies sum gradients and BatchNorm statistics in different orders; after 32 SGD
# steps (parallel_config) the parameters agree to this tolerance, while a wrong batch,
# shift or statistic (a real bug) moves them by orders of magnitude more.
TOL = dict(rtol=2e-3, atol=2e-4)


def run_bounded(args, env, timeout=420):
  """Runs a child in its own session; on timeout SIGKILLs the whole group (hung JAX
  processes ignore SIGTERM)."""
  proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, start_new_session=True)
  try:
    out, _ = proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate()
    pytest.fail(f"{args} timed out:\n{out.decode()[-3000:]}")
  return proc.returncode, out.decode()


def worker(devices: int, *jobs: str, env) -> str:
  code, out = run_bounded([sys.executable, str(WORKER), str(devices), *jobs], env)
  assert code == 0, out[-3000:]
  return out


def load(workdir: Path, epochs: int = 1):
  return saved_state(workdir, parallel_config("single", epochs))


def assert_close(a, b, **tol):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(x, y, **(tol or TOL))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_env):
  """Epoch 1 under every strategy on 2 and 4 devices, plus resumes across device counts."""
  root = tmp_path_factory.mktemp("parallel")
  d = {name: root / name for name in ("single", "pmap2", "sharded2", "pmap4", "sharded4",
                                      "pmap2_to_sharded4")}
  worker(2, f"single:{d['single']}:1", f"pmap:{d['pmap2']}:1", f"sharded:{d['sharded2']}:1",
         env=data_env)
  shutil.copytree(d["pmap2"], d["pmap2_to_sharded4"])
  worker(4, f"pmap:{d['pmap4']}:1", f"sharded:{d['sharded4']}:1",
         f"sharded:{d['pmap2_to_sharded4']}:2", env=data_env)
  return d


@pytest.mark.parametrize("name", ["pmap2", "sharded2", "pmap4", "sharded4"])
def test_strategies_give_the_same_parameters(runs, name):
  reference = load(runs["single"])
  other = load(runs[name])
  assert int(other["step"]) == int(reference["step"]) == 32
  assert_close(reference, other)


def test_pmap_checkpoint_resumes_under_sharded_on_another_device_count(runs, tmp_path,
                                                                      monkeypatch, raw_dir,
                                                                      tfds_dir):
  monkeypatch.setenv("JAXDIGITS_RAW_DATA", str(raw_dir))
  monkeypatch.setenv("JAXDIGITS_DATA_DIR", str(tfds_dir))
  # The uninterrupted reference: two epochs on one device.
  train.train_and_evaluate(parallel_config("single", 2), tmp_path / "ref")
  reference = load(tmp_path / "ref", 2)
  assert_close(reference, load(runs["pmap2_to_sharded4"], 2))  # pmap x2 → sharded x4
  # sharded x2 → single x1, in this (one-device) process.
  shutil.copytree(runs["sharded2"], tmp_path / "sharded2_to_single")
  train.train_and_evaluate(parallel_config("single", 2), tmp_path / "sharded2_to_single")
  assert_close(reference, load(tmp_path / "sharded2_to_single", 2))


def test_single_device_checkpoint_resumes_on_two_devices(runs, tmp_path, data_env):
  resumed = tmp_path / "single_to_sharded2"
  shutil.copytree(runs["single"], resumed)
  worker(2, f"sharded:{resumed}:2", env=data_env)
  ref = tmp_path / "ref2"
  worker(1, f"single:{ref}:2", env=data_env)
  assert_close(load(ref, 2), load(resumed, 2))


def test_batch_that_does_not_divide_over_devices_is_refused(data_env, tmp_path):
  env = {**data_env, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
  code, out = run_bounded([sys.executable, "-m", "jaxdigits.main", "--config=configs/cnn.py",
                           f"--workdir={tmp_path}", "--config.train.batch_size=126"], env,
                          timeout=120)
  assert code == 2
  assert "train.batch_size: the global batch 126 does not divide over 4 devices" in out
  assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_on_localhost_match_one_process(runs, data_env, tmp_path):
  port = _free_port()
  workdir = tmp_path / "multihost"
  procs = []
  for pid in range(2):
    env = {**data_env, "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
           "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(pid)}
    procs.append(subprocess.Popen([sys.executable, str(WORKER), "1", f"sharded:{workdir}:1"],
                                  cwd=REPO, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, start_new_session=True))
  deadline = time.time() + 420
  outputs = []
  try:
    for proc in procs:
      out, _ = proc.communicate(timeout=max(1, deadline - time.time()))
      outputs.append(out.decode())
  except subprocess.TimeoutExpired:
    pytest.fail("the two-process run timed out")
  finally:
    for proc in procs:
      if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
  for proc, out in zip(procs, outputs):
    assert proc.returncode == 0, out[-3000:]
  assert "'processes': 2" in outputs[0] and "'devices': 2" in outputs[0]
  assert_close(load(runs["single"]), load(workdir))
  # Metrics are written once, by process 0.
  assert len((workdir / "metrics.jsonl").read_text().splitlines()) == 2


def test_unreachable_coordinator_fails_fast_with_a_clear_error(data_env, tmp_path):
  port = _free_port()  # nobody listens here
  start = time.time()
  code, out = run_bounded(
      [sys.executable, "-m", "jaxdigits.main", "--config=configs/cnn.py",
       f"--workdir={tmp_path}", "--config.parallel.distributed=True",
       f"--config.parallel.coordinator_address=127.0.0.1:{port}",
       "--config.parallel.num_processes=2", "--config.parallel.process_id=1",
       "--config.parallel.init_timeout_seconds=5"], data_env, timeout=120)
  assert code == 2, out[-3000:]
  assert f"process 1 of 2 could not reach the coordinator at 127.0.0.1:{port} within 5 s" in out
  assert "Traceback" not in out
  assert time.time() - start < 90
