#!/usr/bin/env bash
# Trains the three shipped radiograph models in order and writes their weights
# into jaxsr/pretrained/: xray_x4 (PSNR), xray_x2 (PSNR), then xray_x4_gan
# (fine-tuned from xray_x4). Each stage resumes from its workdir if stopped.
#
#   bash tools/train_xray_models.sh DATA_DIR [RUNS_DIR]
#
# DATA_DIR is one folder holding both splits (the held-out patients are
# jaxsr.config.XRAY_HELDOUT); the shipped models used the folder of PNGs
# described in their model cards (jaxsr/pretrained/*.md).
set -euo pipefail
data=${1:?usage: bash tools/train_xray_models.sh DATA_DIR [RUNS_DIR]}
runs=${2:-runs}
cd "$(dirname "$0")/.."
common=(--config.data.train_dir="$data" --config.data.eval_dir="$data")

train() {  # name, extra flags...
  local name=$1; shift
  local start=$SECONDS
  python -m jaxsr.main --config="configs/$name.py" --workdir="$runs/$name" "${common[@]}" "$@"
  echo "$name: trained in $((SECONDS - start)) s" | tee -a "$runs/train_times.txt"
}

ship() {  # name, convert flags...
  local name=$1; shift
  python -m jaxsr.convert --input="$runs/$name" --output="jaxsr/pretrained/$name.safetensors" \
      --overwrite "$@"  # Replaces the shipped file on purpose.
}

mkdir -p "$runs"
train xray_x4
# Its EMA started at the random init with a fixed decay (no warm-up), so the
# final weights are the better model (see configs/xray_x4.py).
ship xray_x4 --final_weights
train xray_x2
ship xray_x2
train xray_x4_gan --config.init_from="$runs/xray_x4"
ship xray_x4_gan
cat "$runs/train_times.txt"
