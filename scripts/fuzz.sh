#!/usr/bin/env bash
# Fuzzes chatfn's parsers for a bounded time: every target in fuzz/ runs for N seconds (default
# 20; the first argument or CHATFN_FUZZ_SECONDS), starting from the committed seeds. Fails if any
# target crashes, and prints the input that crashed it.
#
# cargo-fuzz wants nightly flags (-Zsanitizer, coverage instrumentation): a stable toolchain takes
# them with RUSTC_BOOTSTRAP=1, set here only, for the fuzz build. cargo-fuzz is installed into
# ${CHATFN_TOOLS_DIR:-~/.cache/chatfn}/fuzz-tools once; later runs reuse it.
#
# Reproduce a crash: fuzz/target/<host>/release/<target> <crash file>
# Environment: CHATFN_FUZZ_SECONDS, CHATFN_FUZZ_SANITIZER (address, or none), CHATFN_TOOLS_DIR,
# CHATFN_FUZZ_TARGET_DIR (default fuzz/target).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-${CHATFN_FUZZ_SECONDS:-20}}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [seconds-per-target]  (got '$seconds')" >&2
  exit 2
fi
# `address` catches memory errors in the C code linked in too; `none` builds faster.
sanitizer="${CHATFN_FUZZ_SANITIZER:-address}"
cargo_fuzz_version="0.13.1"
tools="${CHATFN_TOOLS_DIR:-$HOME/.cache/chatfn}/fuzz-tools"
# A fresh clone (as CI makes) builds everything again (~8-11 min on 2 cores); pointing this at a
# kept directory makes later runs rebuild only what changed.
target_dir="${CHATFN_FUZZ_TARGET_DIR:-$root/fuzz/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

if ! "$tools/bin/cargo-fuzz" --version 2>/dev/null | grep -qF "$cargo_fuzz_version"; then
  step "install cargo-fuzz $cargo_fuzz_version into $tools"
  cargo install --locked cargo-fuzz --version "$cargo_fuzz_version" --root "$tools"
fi
export PATH="$tools/bin:$PATH"

cd "$root/fuzz"
targets=()
while IFS= read -r target; do
  targets+=("$target")
done < <(cargo fuzz list)

step "build ${#targets[@]} fuzz targets (sanitizer: $sanitizer, debug assertions on)"
started=$SECONDS
# -O: optimized, as fuzzing wants executions per second; -a: debug assertions, so an integer
# overflow is a crash rather than a silently wrong answer.
RUSTC_BOOTSTRAP=1 cargo fuzz build -O -a --sanitizer "$sanitizer" --target-dir "$target_dir"
echo "built in $((SECONDS - started)) s"

host="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="$target_dir/$host/release"
failed=()
summary=()
for target in "${targets[@]}"; do
  step "fuzz $target for $seconds s"
  corpus="$root/fuzz/corpus/$target"
  artifacts="$root/fuzz/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  if [[ -d "$root/fuzz/seeds/$target" ]]; then
    cp -n "$root/fuzz/seeds/$target"/* "$corpus"/ 2>/dev/null || true
  fi
  log="$artifacts/last-run.log"
  status=0
  "$bin_dir/$target" "$corpus" \
    -max_total_time="$seconds" \
    -timeout=10 \
    -rss_limit_mb=2048 \
    -max_len=8192 \
    -print_final_stats=1 \
    -artifact_prefix="$artifacts/" \
    </dev/null >"$log" 2>&1 || status=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  if [[ -z "$runs" ]]; then
    runs="$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)"
  fi
  if [[ $status -eq 0 ]]; then
    summary+=("$(printf '%-22s %10s runs in %s s  ok' "$target" "${runs:-?}" "$seconds")")
    echo "$target: ${runs:-?} runs, no crash"
  else
    crash="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
    summary+=("$(printf '%-22s %10s runs  CRASHED: %s' "$target" "${runs:-?}" "${crash:-see $log}")")
    failed+=("$target")
    # The panic message and the first frames are what tell the bug.
    grep -m 1 -A 12 -E "panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer" "$log" || tail -n 30 "$log"
    echo "$target CRASHED (exit $status); input: ${crash:-unknown}; log: $log"
  fi
done

step "summary (${seconds} s per target)"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "crashed: ${failed[*]}" >&2
  exit 1
fi
echo "${#targets[@]} targets fuzzed, no crash"
