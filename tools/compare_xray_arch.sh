#!/usr/bin/env bash
# The x4 architecture comparison behind xray_x4 (configs/xray_arch.py): trains
# every candidate for the same time (its STEPS), then scores each on the
# validation patients (nih/ and mhh/ of the training set, by folder) and the
# older held-out set, and prints the means per source group.
#
#   bash tools/compare_xray_arch.sh XRAY_PNG_DIR XRAY_TRAIN_DIR [RUNS_DIR] [CANDIDATE ...]
#
# e.g. bash tools/compare_xray_arch.sh ../shared/data/xray/png ../shared/data/xray_train
# Each run resumes from its workdir if stopped; evaluations go to RUNS_DIR/eval/.
set -euo pipefail
png=${1:?usage: bash tools/compare_xray_arch.sh XRAY_PNG_DIR XRAY_TRAIN_DIR [RUNS_DIR] [CANDIDATE ...]}
train=${2:?usage: bash tools/compare_xray_arch.sh XRAY_PNG_DIR XRAY_TRAIN_DIR [RUNS_DIR] [CANDIDATE ...]}
runs=${3:-runs/arch}
shift $(( $# < 3 ? $# : 3 ))
cd "$(dirname "$0")/.."
candidates=("$@")
if [ ${#candidates[@]} -eq 0 ]; then
  mapfile -t candidates < <(python -c "from configs import xray_arch; print('\n'.join(xray_arch.CANDIDATES))")
fi
mkdir -p "$runs/eval"
for name in "${candidates[@]}"; do
  start=$SECONDS
  python -m jaxsr.main --config="configs/xray_arch.py:$name" --workdir="$runs/$name" \
      --config.data.train_dir="$png,$train" --config.data.eval_dir="$png,$train"
  echo "$name: trained in $((SECONDS - start)) s" | tee -a "$runs/train_times.txt"
  python -m jaxsr.evaluate --weights="$runs/$name" --names="$name" --hr="$train" --validation \
      --output="$runs/eval/$name/validation"
  python -m jaxsr.evaluate --weights="$runs/$name" --names="$name" --hr="$png" --heldout \
      --groups=heldout_nih='nih_*',heldout_dx='*DX*' --output="$runs/eval/$name/heldout"
done
for name in "${candidates[@]}"; do
  echo "== $name"
  sed -n '/Means by source group/,/^Means over/p' "$runs/eval/$name/validation/summary.md" \
      "$runs/eval/$name/heldout/summary.md" | grep '^| [a-z_]* | '"$name"
done
