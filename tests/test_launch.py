"""launch/ scripts: --help, dry-runs that print the exact commands, and refusals."""

import shlex
import subprocess

import pytest

from conftest import REPO


def launch(script, *args):
  return subprocess.run(["bash", str(REPO / "launch" / script), *args], capture_output=True,
                        text=True, timeout=30)


@pytest.mark.parametrize("script", ["multi_gpu.sh", "tpu_vm.sh", "slurm.sh"])
def test_help(script):
  result = launch(script, "--help")
  assert result.returncode == 0 and result.stdout.startswith("Usage: launch/" + script)
  assert "--dry-run" in result.stdout


def test_multi_gpu_dry_run_prints_the_command():
  result = launch("multi_gpu.sh", "--gpus", "0,1", "--workdir", "runs/x", "--dry-run", "--",
                  "--config.train.batch_size=512")
  assert result.returncode == 0, result.stderr
  assert shlex.split(result.stdout) == [
      "env", "CUDA_VISIBLE_DEVICES=0,1", "python3", "-m", "jaxdigits.main",
      "--config=configs/cnn.py", "--workdir=runs/x", "--config.parallel.strategy=sharded",
      "--config.train.batch_size=512"]


def test_tpu_vm_dry_run_runs_on_every_worker():
  result = launch("tpu_vm.sh", "--name", "digits", "--zone", "us-central2-b", "--workdir",
                  "/mnt/runs/a", "--setup", "--dry-run")
  assert result.returncode == 0, result.stderr
  setup, train = [shlex.split(line) for line in result.stdout.splitlines()]
  assert setup[:7] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "digits",
                       "--zone=us-central2-b"] and "--worker=all" in setup
  assert setup[-1] == "--command=cd ~/jaxdigits && python3 -m pip install -q -e ."
  assert train[-1] == ("--command=cd ~/jaxdigits && python3 -m jaxdigits.main "
                       "--config=configs/cnn.py --workdir=/mnt/runs/a "
                       "--config.parallel.distributed=True --config.parallel.strategy=sharded")


def test_slurm_dry_run_script_uses_first_node_as_coordinator():
  result = launch("slurm.sh", "--nodes", "4", "--gpus-per-node", "2", "--workdir", "/shared/r",
                  "--dry-run")
  assert result.returncode == 0, result.stderr
  script = result.stdout
  assert "#SBATCH --nodes=4" in script and "#SBATCH --gpus-per-node=2" in script
  assert 'scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1):12355' in script
  assert "JAX_PROCESS_ID=$SLURM_PROCID JAX_NUM_PROCESSES=$SLURM_NTASKS" in script
  assert "--config.parallel.distributed=True" in script
  # The script itself is valid bash.
  check = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
  assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("script, args, message", [
    ("slurm.sh", ["--workdir", "x", "--dry-run"], "--nodes must be a positive integer"),
    ("slurm.sh", ["--nodes", "2", "--dry-run"], "--workdir is required"),
    ("tpu_vm.sh", ["--zone", "z", "--workdir", "w", "--dry-run"], "--name is required"),
    ("multi_gpu.sh", ["--strategy", "single", "--dry-run"], "--strategy must be sharded or pmap"),
    ("multi_gpu.sh", ["--bogus"], "unknown option --bogus"),
])
def test_bad_arguments_are_refused(script, args, message):
  result = launch(script, *args)
  assert result.returncode == 2 and message in result.stderr
