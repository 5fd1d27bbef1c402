#!/usr/bin/env bash
# Train on every worker of a Cloud TPU VM slice (e.g. v4-32: 4 hosts).
#
#   launch/tpu_vm.sh TPU_NAME ZONE WORKDIR [jaxsr.main flags ...]
#   launch/tpu_vm.sh my-v4-32 us-central2-b gs://bucket/runs/srgan \
#       --config=configs/srgan.py --config.data.train_dir=/mnt/xray/train
#
# Runs the same command on all workers; each process finds the others through
# TPU_WORKER_HOSTNAMES (jax.distributed.initialize() auto-detection), so no
# --coordinator_address is needed. WORKDIR and the data must be visible to all
# workers with the same path (a GCS bucket or a shared disk). The repository
# must already be at ~/jaxsr with its virtual environment at ~/jaxsr/.venv on
# every worker (see launch/README.md for the one-time setup).
set -euo pipefail
NAME="${1:?usage: $0 TPU_NAME ZONE WORKDIR [flags ...]}"
ZONE="${2:?zone}"
WORKDIR="${3:?workdir}"
shift 3
FLAGS="$(printf ' %q' "$@")"
gcloud compute tpus tpu-vm ssh "${NAME}" --zone="${ZONE}" --worker=all --command="\
cd ~/jaxsr && source .venv/bin/activate && \
python -m jaxsr.main --workdir=$(printf '%q' "${WORKDIR}")${FLAGS} 2>&1 | tee -a ~/jaxsr_train.log"
