#!/usr/bin/env bash
# Train on all GPUs of one host: one process drives every local GPU.
#
#   launch/multi_gpu.sh WORKDIR [jaxsr.main flags ...]
#   CUDA_VISIBLE_DEVICES=0,1,2,3 launch/multi_gpu.sh runs/srgan \
#       --config=configs/srgan.py --config.data.train_dir=/data/xray/train
#
# The global batch (--config.data.batch_size) must divide by the GPU count.
set -euo pipefail
WORKDIR="${1:?usage: $0 WORKDIR [jaxsr.main flags ...]}"
shift
cd "$(dirname "$0")/.."
# Let XLA take most of GPU memory up front, not 75 %, for larger batches.
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}"
exec python -m jaxsr.main --workdir="${WORKDIR}" "$@"
