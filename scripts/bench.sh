#!/usr/bin/env bash
# chatfn against the Node AI SDK doing the same job, on one machine with one mock model
# (bench/; the method is in docs/benchmarks.md).
#
#   bash scripts/bench.sh           # the full run (a few minutes); rewrites docs/benchmarks.md and
#                                   # docs/benchmarks.png
#   bash scripts/bench.sh --quick   # a few seconds with debug builds: checks the command works (CI)
#
# Both also run chatfn on DynamoDB Local (the read and write units of a turn): the one at
# AWS_ENDPOINT_URL_DYNAMODB when that is set, else one started here and stopped at the end.
# Other arguments go to the bench binary (`--levels 1,100,1000`, `--tokens 500`, …).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/npm-install.sh bench/baseline

quick=""
if [[ "${1:-}" == "--quick" ]]; then
  quick="yes"
fi

# The plot's labels are drawn from a TTF file (no system font configuration needed).
if [[ -z "$quick" && ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf && -z "${CHATFN_BENCH_FONT:-}" ]]; then
  echo "bench: installing fonts-dejavu-core for the plot's labels" >&2
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y fonts-dejavu-core >&2
fi

started_dynamodb=""
stop_dynamodb() {
  if [[ -n "$started_dynamodb" ]]; then
    kill "$started_dynamodb" 2>/dev/null || true
  fi
}
trap stop_dynamodb EXIT
if [[ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]]; then
  eval "$(bash scripts/dynamodb-local.sh start)"
  started_dynamodb="$CHATFN_DYNAMODB_LOCAL_PID"
  export AWS_ENDPOINT_URL_DYNAMODB
fi

if [[ -n "$quick" ]]; then
  target="${CARGO_TARGET_DIR:-$root/target}"
  cargo build -p local --features dynamodb -p bench
  "$target/debug/bench" --chatfn "$target/debug/chatfn-local" --dynamodb "$@"
  exit
fi
cargo build --release -p local --features dynamodb -p bench
target/release/bench --write-docs --dynamodb "$@"
