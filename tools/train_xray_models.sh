#!/usr/bin/env bash
# Trains the three shipped radiograph models in order and writes their weights
# into jaxsr/pretrained/: xray_x4 (PSNR), xray_x2 (PSNR), then xray_x4_gan
# (fine-tuned from xray_x4). Each stage resumes from its workdir if stopped.
#
#   bash tools/train_xray_models.sh XRAY_PNG_DIR XRAY_TRAIN_DIR [RUNS_DIR]
#
# The shipped models: bash tools/train_xray_models.sh ../shared/data/xray/png \
#     ../shared/data/xray_train. Both folders are read for training and for the
# end-of-run evaluations; the held-out (jaxsr.config.XRAY_HELDOUT) and
# validation (XRAY_VALIDATION) patients are never trained on. The model cards
# (jaxsr/pretrained/*.md) give the evaluations of what this writes.
set -euo pipefail
usage="usage: bash tools/train_xray_models.sh XRAY_PNG_DIR XRAY_TRAIN_DIR [RUNS_DIR]"
png=${1:?$usage}
train=${2:?$usage}
runs=${3:-runs}
cd "$(dirname "$0")/.."
common=(--config.data.train_dir="$png,$train" --config.data.eval_dir="$png,$train")

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
ship xray_x4
train xray_x2
ship xray_x2
train xray_x4_gan --config.init_from="$runs/xray_x4"
ship xray_x4_gan
cat "$runs/train_times.txt"
