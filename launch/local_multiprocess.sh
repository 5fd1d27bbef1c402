#!/usr/bin/env bash
# Smoke test of the multi-process code path on one machine: N CPU processes,
# each with DEVICES virtual devices, meeting at 127.0.0.1:PORT.
#
#   launch/local_multiprocess.sh N [jaxsr.main flags ...]
#   NUM_PROCESSES=2 DEVICES_PER_PROCESS=2 PORT=12355 launch/local_multiprocess.sh 2 \
#       --config=configs/srresnet.py:tiny --workdir=/tmp/mp \
#       --config.data.train_dir=/data/xray/train --config.data.batch_size=4
#
# Each process logs to $LOG_DIR/jaxsr_process_I.log (LOG_DIR defaults to /tmp);
# the exit status is the first non-zero one of the processes.
set -euo pipefail
N="${1:?usage: $0 NUM_PROCESSES [jaxsr.main flags ...]}"
shift
DEVICES="${DEVICES_PER_PROCESS:-2}"
PORT="${PORT:-$((20000 + RANDOM % 20000))}"
LOG_DIR="${LOG_DIR:-/tmp}"
cd "$(dirname "$0")/.."
pids=()
for ((i = 0; i < N; i++)); do
  XLA_FLAGS="--xla_force_host_platform_device_count=${DEVICES}" JAX_PLATFORMS=cpu \
    python -m jaxsr.main "$@" --coordinator_address="127.0.0.1:${PORT}" \
    --num_processes="${N}" --process_id="${i}" >"${LOG_DIR}/jaxsr_process_${i}.log" 2>&1 &
  pids+=($!)
done
status=0
for ((i = 0; i < N; i++)); do
  rc=0
  wait "${pids[$i]}" || rc=$?
  if [[ ${rc} -ne 0 ]]; then
    echo "process ${i} failed (exit ${rc}); see ${LOG_DIR}/jaxsr_process_${i}.log" >&2
    [[ ${status} -eq 0 ]] && status=${rc}
  fi
done
[[ ${status} -eq 0 ]] && echo "all ${N} processes finished; logs in ${LOG_DIR}/jaxsr_process_*.log"
exit "${status}"
