#!/usr/bin/env bash
# Trains the two shipped volume models and writes their weights into
# jaxsr/pretrained/: ct_x2 (on the head CT series) and mr_x2 (on the MR folder),
# each fine-tuned from the shipped xray_x2. Each stage resumes from its
# workdir if stopped.
#
#   bash tools/train_volume_models.sh DATA_DIR [RUNS_DIR]
#
# DATA_DIR holds ct/invesalius_head_ct/ (a DICOM series) and mr/ (the ICBM152
# NIfTI template and the abdominal MR), as ../shared/data does; the configs
# split each volume into training and held-out slices (configs/ct_x2.py,
# configs/mr_x2.py; the model cards in jaxsr/pretrained/ say how).
set -euo pipefail
data=${1:?usage: bash tools/train_volume_models.sh DATA_DIR [RUNS_DIR]}
runs=${2:-runs}
cd "$(dirname "$0")/.."

train() {  # name, data folder
  local name=$1 folder=$2
  local start=$SECONDS
  python -m jaxsr.main --config="configs/$name.py" --workdir="$runs/$name" \
      --config.data.train_dir="$folder" --config.data.eval_dir="$folder"
  echo "$name: trained in $((SECONDS - start)) s" | tee -a "$runs/train_times.txt"
  python -m jaxsr.convert --input="$runs/$name" --output="jaxsr/pretrained/$name.safetensors" \
      --overwrite  # Replaces the shipped file on purpose.
}

mkdir -p "$runs"
train ct_x2 "$data/ct/invesalius_head_ct"
train mr_x2 "$data/mr"
cat "$runs/train_times.txt"
