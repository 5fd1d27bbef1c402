#!/usr/bin/env bash
# The seed paper's experiment: SRGAN, ESRGAN and Real-ESRGAN trained on the
# same radiographs, each after its PSNR stage, then scored side by side.
#
#   bash tools/reproduce_paper.sh DATA_DIR OUT_DIR [OPTION[,OPTION]]
#
# DATA_DIR holds xray/png (the held-out patients and more) and xray_train
# (e.g. ../shared/data); images of the held-out and validation patients
# (jaxsr.config.XRAY_HELDOUT, XRAY_VALIDATION) are never trained on. OPTION is
# the configs' argument: tiny (a test of the whole experiment in minutes),
# full (reference network sizes, for an accelerator), vgg (VGG19 perceptual
# losses; needs --config.loss.vgg_weights' file).
#
# Stages, in order, each in OUT_DIR/<stage> (configs/paper/<stage>.py):
#   srresnet -> srgan, rrdb_psnr -> esrgan, rrdb_psnr -> realesrnet -> realesrgan
# A stage that finished holds FINISHED and is skipped; a stopped one (crash,
# Ctrl-C, a session's end) resumes from its last checkpoint. Each stage adds
# its wall time to OUT_DIR/<stage>/seconds. Then jaxsr evaluate scores the six
# models and bicubic on the held-out patients at x4, with clean bicubic LR
# (OUT_DIR/eval_clean) and Real-ESRGAN-degraded LR (OUT_DIR/eval_realesrgan,
# seed 0), and tools/paper_tables.py writes OUT_DIR/tables.md. Delete an
# evaluation folder to score again.
#
# Environment: PYTHON (default python), EXTRA_EVAL_ARGS (more jaxsr evaluate
# flags, e.g. --center_crop=512 for a quick look).
set -euo pipefail

usage="usage: bash tools/reproduce_paper.sh DATA_DIR OUT_DIR [tiny|full|vgg[,...]]"
if [[ $# -lt 2 || $# -gt 3 ]]; then echo "$usage" >&2; exit 2; fi
DATA="$1"
OUT="$2"
OPTION="${3:-}"
PY="${PYTHON:-python}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
for folder in "$DATA/xray/png" "$DATA/xray_train"; do
  if [[ ! -d "$folder" ]]; then
    echo "reproduce_paper: $folder: no such folder (DATA_DIR must hold xray/png and xray_train)" >&2
    exit 2
  fi
done
mkdir -p "$OUT"

STAGES=(srresnet srgan rrdb_psnr esrgan realesrnet realesrgan)
NAMES=(SRResNet SRGAN RRDB-PSNR ESRGAN Real-ESRNet Real-ESRGAN)
declare -A INIT=([srgan]=srresnet [esrgan]=rrdb_psnr [realesrnet]=rrdb_psnr
                 [realesrgan]=realesrnet)
TRAIN="$DATA/xray/png,$DATA/xray_train"

log() { echo "[reproduce_paper] $*"; }

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //') x $(nproc)"
  echo "memory: $(free -g 2>/dev/null | awk '/Mem:/ {print $2 " GiB"}')"
  "$PY" -c "import jax; print('jax', jax.__version__, [d.device_kind for d in jax.devices()])"
  echo "option: ${OPTION:-none}"
} >> "$OUT/hardware.txt"

for stage in "${STAGES[@]}"; do
  work="$OUT/$stage"
  if [[ -f "$work/FINISHED" ]]; then
    log "$stage: finished earlier, skipped"
    continue
  fi
  mkdir -p "$work"
  init=()
  if [[ -n "${INIT[$stage]:-}" ]]; then
    init=("--config.init_from=$OUT/${INIT[$stage]}")
  fi
  log "$stage: training in $work"
  start=$(date +%s)
  status=0
  "$PY" -m jaxsr.main --config="$REPO/configs/paper/$stage.py${OPTION:+:$OPTION}" \
      --workdir="$work" --config.data.train_dir="$TRAIN" "${init[@]}" \
      2>&1 | tee -a "$work/train.log" || status=$?
  echo $(( $(date +%s) - start )) >> "$work/seconds"
  if [[ $status -ne 0 ]]; then
    log "$stage: stopped (exit $status); run the same command again to resume it"
    exit "$status"
  fi
  touch "$work/FINISHED"
done

weights=()
for stage in "${STAGES[@]}"; do weights+=("--weights=$OUT/$stage"); done
names="$(IFS=,; echo "${NAMES[*]}")"
groups='heldout_nih=nih_*,heldout_dx=*pydicom966_chest_DX*'
for lr in clean realesrgan; do
  out="$OUT/eval_$lr"
  if [[ -f "$out/summary.md" ]]; then
    log "eval_$lr: scored earlier, skipped"
    continue
  fi
  degradation=bicubic
  [[ $lr == realesrgan ]] && degradation=realesrgan
  log "eval_$lr: scoring the six models and bicubic on the held-out patients"
  rm -rf "$out.partial"
  # shellcheck disable=SC2086  # EXTRA_EVAL_ARGS is a list of flags
  "$PY" -m jaxsr.evaluate --hr="$DATA/xray/png" --heldout --scale=4 --groups="$groups" \
      --degradation="$degradation" --seed=0 "${weights[@]}" --names="$names" \
      --output="$out.partial" ${EXTRA_EVAL_ARGS:-}
  rm -rf "$out"
  mv "$out.partial" "$out"
done

"$PY" "$REPO/tools/paper_tables.py" "$OUT" > "$OUT/tables.md"
log "done: $OUT/tables.md"
