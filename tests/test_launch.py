"""launch/ scripts, run for real against stand-ins for python3, srun, scontrol, sbatch and
gcloud that record what they were given: each process gets the exact command, its process
id, the process count and the coordinator's address; --dry-run prints what would run."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

# Stand-ins: each records its arguments (one per line) and the variables a launch sets.
FAKES = {
    "python3": 'f="$RECORD/python3.${JAX_PROCESS_ID:-0}.$(date +%s%N)"\n'
               '{ echo "cwd=$PWD"; for v in JAX_PROCESS_ID JAX_NUM_PROCESSES CUDA_VISIBLE_DEVICES;'
               ' do echo "$v=${!v-unset}"; done; printf "%s\\n" "$@"; } > "$f"',
    "gcloud": 'printf "%s\\n" "$@" > "$RECORD/gcloud.$(date +%s%N)"',
    "srun": 'for ((i = 0; i < SLURM_NTASKS; i++)); do SLURM_PROCID=$i "$@" || exit; done',
    "scontrol": '[[ "$*" == "show hostnames $SLURM_JOB_NODELIST" ]] && printf "gpu7\\ngpu8\\n"',
    "sbatch": 'cat > "$RECORD/sbatch.stdin"',
}
FEATURES = "--config.model.features=(8, 16)"  # an override that needs quoting on every hop


@pytest.fixture()
def env(tmp_path) -> dict[str, str]:
  bin_dir, record = tmp_path / "bin", tmp_path / "record"
  bin_dir.mkdir()
  record.mkdir()
  for name, body in FAKES.items():
    (bin_dir / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
    (bin_dir / name).chmod(0o755)
  return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RECORD": str(record),
          "HOME": str(tmp_path)}


def launch(script, *args, env=None):
  return subprocess.run(["bash", str(REPO / "launch" / script), *args], capture_output=True,
                        text=True, timeout=30, env=env, cwd=REPO)


def recorded(env, program: str) -> list[list[str]]:
  """Each call's recorded lines, in call order."""
  files = sorted(Path(env["RECORD"]).glob(f"{program}.*"), key=lambda p: p.name.split(".")[-1])
  return [p.read_text().splitlines() for p in files]


def trainer_args(workdir: str, *extra: str) -> list[str]:
  return ["-m", "jaxdigits.main", "--config=configs/cnn.py", f"--workdir={workdir}", *extra]


@pytest.mark.parametrize("script", ["multi_gpu.sh", "tpu_vm.sh", "slurm.sh"])
def test_help(script):
  result = launch(script, "--help")
  assert result.returncode == 0 and result.stdout.startswith("Usage: launch/" + script)
  assert "--dry-run" in result.stdout


def test_multi_gpu_runs_one_process_on_the_chosen_gpus(env):
  args = ["--gpus", "0,1", "--workdir", "runs/x", "--strategy", "pmap"]
  result = launch("multi_gpu.sh", *args, "--", FEATURES, env=env)
  assert result.returncode == 0, result.stderr
  (call,) = recorded(env, "python3")
  assert call[1:] == ["JAX_PROCESS_ID=unset", "JAX_NUM_PROCESSES=unset",
                      "CUDA_VISIBLE_DEVICES=0,1",
                      *trainer_args("runs/x", "--config.parallel.strategy=pmap", FEATURES)]
  dry = launch("multi_gpu.sh", *args, "--dry-run", "--", FEATURES, env=env)
  assert shlex.split(dry.stdout) == ["env", "CUDA_VISIBLE_DEVICES=0,1", "python3",
                                     *trainer_args("runs/x", "--config.parallel.strategy=pmap",
                                                   FEATURES)]
  assert len(recorded(env, "python3")) == 1  # the dry run ran nothing


def test_slurm_starts_one_process_per_node_with_its_id_and_the_first_node_as_coordinator(
    env, tmp_path):
  args = ["--nodes", "2", "--gpus-per-node", "4", "--workdir", "/shared/r", "--port", "23456",
          "--partition", "gpu", "--time", "02:30:00"]
  dry = launch("slurm.sh", *args, "--dry-run", "--", FEATURES, env=env)
  assert dry.returncode == 0, dry.stderr
  script, submit_hint = dry.stdout.rsplit("\n", 2)[0], dry.stdout.splitlines()[-1]
  assert submit_hint == "# submit with: sbatch <this script>"
  assert [l for l in script.splitlines() if l.startswith("#SBATCH")] == [
      "#SBATCH --job-name=jaxdigits", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1",
      "#SBATCH --gpus-per-node=4", "#SBATCH --time=02:30:00", "#SBATCH --partition=gpu"]
  # What SLURM would do with it: run it on the first node, srun one task per node.
  job = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30,
                       cwd=tmp_path, env={**env, "SLURM_JOB_NODELIST": "gpu[7-8]",
                                          "SLURM_NTASKS": "2"})
  assert job.returncode == 0, job.stderr
  calls = recorded(env, "python3")
  assert sorted(c[1:3] for c in calls) == [["JAX_PROCESS_ID=0", "JAX_NUM_PROCESSES=2"],
                                           ["JAX_PROCESS_ID=1", "JAX_NUM_PROCESSES=2"]]
  want = trainer_args("/shared/r", "--config.parallel.distributed=True",
                      "--config.parallel.strategy=sharded",
                      "--config.parallel.coordinator_address=gpu7:23456", FEATURES)
  assert all(c[4:] == want for c in calls), calls
  submitted = launch("slurm.sh", *args, "--", FEATURES, env=env)
  assert submitted.returncode == 0, submitted.stderr
  assert (Path(env["RECORD"]) / "sbatch.stdin").read_text() == script + "\n"


def test_tpu_vm_runs_setup_then_the_trainer_on_every_worker(env, tmp_path):
  args = ["--name", "digits", "--zone", "us-central2-b", "--project", "proj", "--workdir",
          "/mnt/runs/a", "--setup"]
  result = launch("tpu_vm.sh", *args, "--", FEATURES, env=env)
  assert result.returncode == 0, result.stderr
  ssh = ["compute", "tpus", "tpu-vm", "ssh", "digits", "--zone=us-central2-b", "--worker=all",
         "--project=proj"]
  setup, train = recorded(env, "gcloud")
  assert setup[:-1] == ssh and train[:-1] == ssh
  dry = launch("tpu_vm.sh", *args, "--dry-run", "--", FEATURES, env=env).stdout
  dry = [shlex.split(line) for line in dry.splitlines()]
  assert dry == [["gcloud", *setup], ["gcloud", *train]]  # exactly what it runs
  # What each worker's shell does with --command.
  (tmp_path / "jaxdigits").mkdir()
  for call in (setup, train):
    command = call[-1].removeprefix("--command=")
    worker = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                            timeout=30, env=env)
    assert worker.returncode == 0, worker.stderr
  pip, trainer = recorded(env, "python3")
  assert pip[0] == trainer[0] == f"cwd={tmp_path / 'jaxdigits'}"
  assert pip[4:] == ["-m", "pip", "install", "-q", "-e", "."]
  assert trainer[4:] == trainer_args("/mnt/runs/a", "--config.parallel.distributed=True",
                                     "--config.parallel.strategy=sharded", FEATURES)


@pytest.mark.parametrize("script, args, message", [
    ("slurm.sh", ["--workdir", "x", "--dry-run"], "--nodes must be a positive integer"),
    ("slurm.sh", ["--nodes", "0", "--workdir", "x", "--dry-run"],
     "--nodes must be a positive integer"),
    ("slurm.sh", ["--nodes", "2", "--dry-run"], "--workdir is required"),
    ("tpu_vm.sh", ["--zone", "z", "--workdir", "w", "--dry-run"], "--name is required"),
    ("multi_gpu.sh", ["--strategy", "single", "--dry-run"], "--strategy must be sharded or pmap"),
    ("multi_gpu.sh", ["--bogus"], "unknown option --bogus"),
])
def test_bad_arguments_are_refused(script, args, message, env):
  result = launch(script, *args, env=env)
  assert result.returncode == 2 and message in result.stderr and result.stdout == ""
  assert not list(Path(env["RECORD"]).iterdir())  # nothing was started or submitted
