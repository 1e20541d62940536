#!/usr/bin/env bash
# Train on one machine with several GPUs: one process sees every GPU, jit over a device mesh.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: launch/multi_gpu.sh [options] [-- extra --config.* overrides]

Train jaxdigits on all (or some) GPUs of this machine, in one process.

Options:
  --config FILE      config file (default: configs/cnn.py)
  --workdir DIR      checkpoints and metrics; reruns resume (default: runs/multi_gpu)
  --gpus LIST        GPUs to use, as CUDA_VISIBLE_DEVICES (default: all)
  --strategy NAME    sharded (default) or pmap
  --python EXE       Python interpreter (default: python3)
  --dry-run          print the exact command instead of running it
  -h, --help         show this help

The global batch (train.batch_size) must divide by the number of GPUs.
Example: launch/multi_gpu.sh --gpus 0,1,2,3 -- --config.train.batch_size=512
USAGE
}

config=configs/cnn.py workdir=runs/multi_gpu gpus="" strategy=sharded python=python3 dry=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    --gpus) gpus=$2; shift 2 ;;
    --strategy) strategy=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) echo "multi_gpu.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$strategy" in sharded|pmap) ;; *) echo "multi_gpu.sh: --strategy must be sharded or pmap" >&2; exit 2 ;; esac

cmd=()
[[ -n "$gpus" ]] && cmd+=(env "CUDA_VISIBLE_DEVICES=$gpus")
cmd+=("$python" -m jaxdigits.main "--config=$config" "--workdir=$workdir"
      "--config.parallel.strategy=$strategy" "$@")
if [[ $dry -eq 1 ]]; then
  printf '%q ' "${cmd[@]}"; echo
else
  exec "${cmd[@]}"
fi
