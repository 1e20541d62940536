#!/usr/bin/env bash
# Train on several SLURM nodes: one process per node, the first node hosts the coordinator.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: launch/slurm.sh --nodes N --workdir DIR [options] [-- overrides]

Write a batch script and submit it with sbatch. srun starts one jaxdigits process per
node; the first node of the allocation is the jax.distributed coordinator, and each
process's id is its SLURM_PROCID.

Options:
  --nodes N          number of nodes (required)
  --gpus-per-node G  GPUs per node (default: 8)
  --workdir DIR      checkpoints and metrics, on a filesystem every node sees (required)
  --config FILE      config file (default: configs/cnn.py)
  --partition P      SLURM partition (default: the cluster's default)
  --time HH:MM:SS    time limit (default: 01:00:00)
  --port PORT        coordinator port on the first node (default: 12355)
  --python EXE       Python interpreter on the nodes (default: python3)
  --dry-run          print the batch script and the sbatch command instead of submitting
  -h, --help         show this help
USAGE
}

nodes="" gpus=8 workdir="" config=configs/cnn.py partition="" limit=01:00:00 port=12355
python=python3 dry=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --gpus-per-node) gpus=$2; shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --partition) partition=$2; shift 2 ;;
    --time) limit=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) echo "slurm.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$nodes" =~ ^[1-9][0-9]*$ ]] || { echo "slurm.sh: --nodes must be a positive integer (see --help)" >&2; exit 2; }
[[ -n "$workdir" ]] || { echo "slurm.sh: --workdir is required (see --help)" >&2; exit 2; }

overrides=""
for o in "$@"; do overrides+=" $(printf '%q' "$o")"; done
script=$(cat <<SCRIPT
#!/usr/bin/env bash
#SBATCH --job-name=jaxdigits
#SBATCH --nodes=$nodes
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=$gpus
#SBATCH --time=$limit
${partition:+#SBATCH --partition=$partition}
set -euo pipefail
# sed reads every line: head would exit early and, under pipefail, scontrol's SIGPIPE kills the job.
coordinator=\$(scontrol show hostnames "\$SLURM_JOB_NODELIST" | sed -n 1p):$port
srun bash -c 'JAX_PROCESS_ID=\$SLURM_PROCID JAX_NUM_PROCESSES=\$SLURM_NTASKS exec $python -m jaxdigits.main --config=$config --workdir=$workdir --config.parallel.distributed=True --config.parallel.strategy=sharded --config.parallel.coordinator_address='"\$coordinator"'$overrides'
SCRIPT
)
if [[ $dry -eq 1 ]]; then
  echo "$script"
  echo "# submit with: sbatch <this script>"
else
  echo "$script" | sbatch
fi
