#!/usr/bin/env bash
# The xray_x4_gan comparison: each variant of configs/xray_x4_gan.py (VARIANTS)
# fine-tuned from the same xray_x4 run for the same steps, then scored on the
# validation patients three ways: clean (bicubic) LR, jaxsr's Real-ESRGAN LR
# (seed 0) and the independent OpenCV set (tools/make_opencv_degraded.py).
#
#   bash tools/compare_xray_gan.sh XRAY_PNG_DIR XRAY_TRAIN_DIR X4_RUN [RUNS_DIR] [STEPS] [VARIANT ...]
#
# e.g. bash tools/compare_xray_gan.sh ../shared/data/xray/png ../shared/data/xray_train runs/xray_x4
# Runs resume from their workdirs; scores go to RUNS_DIR/eval/VARIANT/{clean,realesrgan,opencv}.
set -euo pipefail
usage="usage: bash tools/compare_xray_gan.sh XRAY_PNG_DIR XRAY_TRAIN_DIR X4_RUN [RUNS_DIR] [STEPS] [VARIANT ...]"
png=${1:?$usage}; train=${2:?$usage}; x4=${3:?$usage}
runs=${4:-runs/gan}; steps=${5:-400}
shift $(( $# < 5 ? $# : 5 ))
cd "$(dirname "$0")/.."
variants=("$@")
if [ ${#variants[@]} -eq 0 ]; then
  mapfile -t variants < <(python -c "from configs import xray_x4_gan; print('\n'.join(xray_x4_gan.VARIANTS))")
fi
mkdir -p "$runs/eval"
opencv="$runs/eval/opencv_x4"
[ -d "$opencv" ] || python tools/make_opencv_degraded.py --hr="$train" --validation --output="$opencv"
for name in "${variants[@]}"; do
  start=$SECONDS
  python -m jaxsr.main --config="configs/xray_x4_gan.py:$name" --workdir="$runs/$name" \
      --config.init_from="$x4" --config.train.num_steps="$steps" \
      --config.data.train_dir="$png,$train" --config.data.eval_dir="$png,$train"
  echo "$name: trained in $((SECONDS - start)) s" | tee -a "$runs/train_times.txt"
  out="$runs/eval/$name"
  common=(--weights="$runs/$name" --names="$name" --no_report)
  python -m jaxsr.evaluate "${common[@]}" --hr="$train" --validation --output="$out/clean"
  python -m jaxsr.evaluate "${common[@]}" --hr="$train" --validation --degradation=realesrgan \
      --output="$out/realesrgan"
  python -m jaxsr.evaluate "${common[@]}" --hr="$opencv/hr" --lr="$opencv/lr" --output="$out/opencv"
done
for name in "${variants[@]}"; do
  for lr in clean realesrgan opencv; do
    echo "== $name, $lr LR"
    sed -n '/Means by source group/,/^Means over/p' "$runs/eval/$name/$lr/summary.md" | grep "^| [a-z]* | "
  done
done
