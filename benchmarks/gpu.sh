#!/usr/bin/env bash
# One call that checks and times jaxsr on a GPU machine.
#
#   bash benchmarks/gpu.sh [WHEEL_DIR]
#
# 1. Installs the wheels in WHEEL_DIR (if any) into a private target dir, for
#    images that have jax/flax/optax but not jaxsr's other dependencies
#    (ml_collections, pydicom, pylibjpeg are what the checks below import).
# 2. Prints the GPU, the driver and jax's devices.
# 3. Correctness on the device: the model tests and the parity tests against
#    the BasicSR / Real-ESRGAN fixtures, at full float32 precision (TF32
#    would miss the 1e-4 parity bound by design).
# 4. bench_rrdbnet.py, jax side, float32 and bfloat16: the issue's shapes
#    (1x3x128x128 forward, batch 4 32->128 train step) and a larger train
#    batch, with images/s and the fraction of the chip's peak FLOP/s.
# 5. bench_fps.py: frames/s of RRDBNet-23 and SRVGGNetCompact 64x16 on 640x480
#    RGB frames x4, float32 and bfloat16, against the published RTX 4090 figures;
#    then bfloat16's error and the whole-process upscale with both precisions.
# JSON results go to $JAXSR_BENCH_OUT (default /tmp/jaxsr-gpu-bench);
# JAXSR_BENCH_BLOCKS (default 23) shrinks the network for a dry run on CPU.
# Each stage has its own timeout; the whole script stays under ~8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=${1:-}
OUT_DIR=${JAXSR_BENCH_OUT:-/tmp/jaxsr-gpu-bench}
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python3}
BLOCKS=${JAXSR_BENCH_BLOCKS:-23}
status=0

if [ -n "$WHEELS" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --upgrade --target /tmp/jaxsr-site "$WHEELS"/*.whl || exit 1
  export PYTHONPATH=/tmp/jaxsr-site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

echo "== device"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm \
    --format=csv 2>/dev/null || echo "nvidia-smi: not available"
"$PY" -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__); print(jax.devices())" || exit 1

echo "== correctness on the device (float32, highest matmul precision)"
JAX_DEFAULT_MATMUL_PRECISION=highest timeout 300 "$PY" -m pytest -q -x \
    -p no:cacheprovider tests/test_models.py tests/test_parity.py || status=1

echo "== RRDBNet timings"
for dtype in float32 bfloat16; do
  echo "-- $dtype, the issue's shapes"
  timeout 150 "$PY" benchmarks/bench_rrdbnet.py --no_ref --reps 20 --warmup 3 \
      --blocks "$BLOCKS" --dtype "$dtype" --json "$OUT_DIR/rrdbnet_${dtype}.json" || status=1
  echo "-- $dtype, train step batch 32, LR 64 -> HR 256"
  timeout 150 "$PY" benchmarks/bench_rrdbnet.py --no_ref --reps 10 --warmup 3 \
      --blocks "$BLOCKS" --dtype "$dtype" --tasks train --batch 32 --lr_size 64 \
      --json "$OUT_DIR/rrdbnet_${dtype}_b32.json" || status=1
done
echo "== frames/s at 640x480 x4 against the published RTX 4090 figures"
timeout 240 "$PY" benchmarks/bench_fps.py --reps 10 --batches 1,4 \
    --blocks "$BLOCKS" --json "$OUT_DIR/fps.json" || status=1
echo "== inference in bfloat16 against float32 (held-out radiographs, shipped xray_x4)"
timeout 120 "$PY" benchmarks/bench_dtype.py --reps 5 || status=1
echo "== whole-process upscale of three 1024^2 radiographs, compact 64x16, planned tiles"
timeout 120 "$PY" benchmarks/bench_upscale_process.py --no_ref --reps 2 \
    --variant planned= --variant bf16=--dtype=bfloat16 || status=1
echo "results: $OUT_DIR"
exit $status
