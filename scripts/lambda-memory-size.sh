#!/usr/bin/env bash
# A turn's latency at the Lambda memory sizes, as far as one machine can estimate it: Lambda gives
# a function a share of one vCPU proportional to its MemorySize (one vCPU at 1,769 MB), so the
# release server runs on that share of one CPU (scripts/cpu-share.sh) while the bench times its
# cold start and its turns one at a time, on the in-memory store and on DynamoDB Local with 5 ms
# added to every call (the critical-path phase). docs/profiling.md, "Lambda memory size", reads
# the table this prints. Needs root and the cgroup cpu controller.
#
#   bash scripts/lambda-memory-size.sh            # 128, 256, 512, 1024 and 1769 MB
#   CHATFN_LAMBDA_SIZES="128 256" bash scripts/lambda-memory-size.sh
#
# The bench, the mock model and DynamoDB Local run in a cgroup that outweighs everything else on
# the machine, so that a busy machine slows the figures less than the quota does.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

read -r -a sizes <<<"${CHATFN_LAMBDA_SIZES:-128 256 512 1024 1769}"
turns="${CHATFN_LAMBDA_SIZE_TURNS:-50}"

if [[ -z "${CHATFN_LOCAL_BIN:-}" || -z "${CHATFN_BENCH_BIN:-}" ]]; then
  cargo build --release -p local --features dynamodb -p bench
fi
local_bin="${CHATFN_LOCAL_BIN:-$CARGO_TARGET_DIR/release/chatfn-local}"
bench_bin="${CHATFN_BENCH_BIN:-$CARGO_TARGET_DIR/release/bench}"

measure=""
# A group can be removed once its last process is gone, which a killed server takes a moment for.
leave_group() {
  [[ -n "$measure" ]] || return 0
  echo $$ >"$measure_root/cgroup.procs" 2>/dev/null || true
  for _ in $(seq 50); do
    rmdir "$measure"/chatfn-cpu-share-* "$measure/driver" "$measure" 2>/dev/null || true
    [[ -d "$measure" ]] || return 0
    sleep 0.1
  done
  echo "lambda-memory-size: $measure is left behind" >&2
}
dynamodb_pid=""
stop() {
  if [[ -n "$dynamodb_pid" ]]; then
    kill "$dynamodb_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$dynamodb_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  leave_group
}
trap stop EXIT

# v2 needs the servers' groups beside the driver's, not under it (no processes in a group whose
# controllers its children use).
if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
  measure_root=/sys/fs/cgroup
  measure="$measure_root/chatfn-measure-$$"
  mkdir "$measure"
  echo 10000 >"$measure/cpu.weight"
  echo +cpu >"$measure/cgroup.subtree_control"
elif [[ -d /sys/fs/cgroup/cpu ]]; then
  measure_root=/sys/fs/cgroup/cpu
  measure="$measure_root/chatfn-measure-$$"
  mkdir "$measure"
  echo 262144 >"$measure/cpu.shares"
else
  echo "lambda-memory-size: no cgroup cpu controller here" >&2
  exit 1
fi
mkdir "$measure/driver"
echo $$ >"$measure/driver/cgroup.procs"
export CHATFN_CPU_SHARE_PARENT="$measure"

eval "$(bash scripts/dynamodb-local.sh start)"
dynamodb_pid="$CHATFN_DYNAMODB_LOCAL_PID"
export AWS_ENDPOINT_URL_DYNAMODB

# A row's third cell: the chatfn column of the bench's table, or the critical-path table's median.
cell() { awk -F'|' -v row="$1" -v col="$2" 'index($0, row) == 2 { gsub(/^ +| +$/, "", $col); print $col; exit }'; }

echo "| MemorySize | share of one vCPU | cold start, median | added time to first token, median / p99 (in-memory store) | time to first token over the mock's, median, DynamoDB +5 ms a call: AI SDK / Trigger |"
echo "|---:|---:|---:|---:|---:|"
for mb in "${sizes[@]}"; do
  share="$(awk -v mb="$mb" 'BEGIN { s = mb / 1769; if (s > 1) s = 1; printf "%.4f", s }')"
  out="$(CHATFN_CPU_SHARE="$share" CHATFN_CPU_SHARE_BIN="$local_bin" "$bench_bin" \
    --chatfn scripts/cpu-share.sh --chatfn-only --levels 1 --sequential-turns "$turns" 2>/dev/null)"
  critical="$(CHATFN_CPU_SHARE="$share" CHATFN_CPU_SHARE_BIN="$local_bin" "$bench_bin" \
    --chatfn scripts/cpu-share.sh --dynamodb --critical-path-only --dynamodb-latency-ms 5 \
    --critical-path-turns "$turns" 2>/dev/null)"
  cold="$(cell " cold start (exec to first byte), median " 3 <<<"$out")"
  median="$(cell " added time to first token over the mock's own timing, median " 3 <<<"$out")"
  p99="$(cell " added time to first token over the mock's own timing, p99 " 3 <<<"$out")"
  ai_sdk="$(awk -F'|' '$2 ~ /\+5 ms/ && $3 ~ /AI SDK/ { gsub(/^ +| +$/, "", $4); print $4; exit }' <<<"$critical")"
  trigger="$(awk -F'|' '$2 ~ /\+5 ms/ && $3 ~ /Trigger/ { gsub(/^ +| +$/, "", $4); print $4; exit }' <<<"$critical")"
  echo "| $mb MB | $share | $cold | $median / $p99 | $ai_sdk / $trigger |"
done
echo
echo "$turns turns one at a time per size and phase; CFS period ${CHATFN_CPU_PERIOD_US:-100000} µs."
