#!/usr/bin/env bash
# Train on a Cloud TPU VM slice: the same command on every worker, coordinated by JAX.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: launch/tpu_vm.sh --name TPU --zone ZONE --workdir DIR [options] [-- overrides]

Run jaxdigits on all workers of a Cloud TPU VM slice with `gcloud ... ssh --worker=all`.
On Cloud TPU, jax.distributed discovers the coordinator, process count and process id
itself; every worker trains its shard of each global batch.

Options:
  --name TPU         TPU VM name (required)
  --zone ZONE        its zone (required)
  --project ID       Google Cloud project (default: gcloud's current one)
  --workdir DIR      checkpoints and metrics, on a filesystem every worker sees, e.g. a
                     Filestore/NFS or gcsfuse mount (required; gs:// URLs are not supported)
  --config FILE      config file (default: configs/cnn.py)
  --repo DIR         checkout of jaxdigits on the workers (default: ~/jaxdigits)
  --setup            first install the repo on every worker (pip install -e DIR)
  --dry-run          print the exact commands instead of running them
  -h, --help         show this help
USAGE
}

name="" zone="" project="" workdir="" config=configs/cnn.py repo='~/jaxdigits' setup=0 dry=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) name=$2; shift 2 ;;
    --zone) zone=$2; shift 2 ;;
    --project) project=$2; shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --repo) repo=$2; shift 2 ;;
    --setup) setup=1; shift ;;
    --dry-run) dry=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) echo "tpu_vm.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for required in name zone workdir; do
  [[ -n "${!required}" ]] || { echo "tpu_vm.sh: --$required is required (see --help)" >&2; exit 2; }
done

ssh=(gcloud compute tpus tpu-vm ssh "$name" "--zone=$zone" --worker=all)
[[ -n "$project" ]] && ssh+=("--project=$project")
overrides=""
for o in "$@"; do overrides+=" $(printf '%q' "$o")"; done
train="cd $repo && python3 -m jaxdigits.main --config=$config --workdir=$workdir"
train+=" --config.parallel.distributed=True --config.parallel.strategy=sharded$overrides"
commands=()
[[ $setup -eq 1 ]] && commands+=("cd $repo && python3 -m pip install -q -e .")
commands+=("$train")

for c in "${commands[@]}"; do
  if [[ $dry -eq 1 ]]; then
    printf '%q ' "${ssh[@]}" "--command=$c"; echo
  else
    "${ssh[@]}" "--command=$c"
  fi
done
