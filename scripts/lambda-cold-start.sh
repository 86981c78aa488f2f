#!/usr/bin/env bash
# Cold start of the three Lambda functions as deployed (release builds, the DynamoDB store on
# DynamoDB Local), under `cargo lambda watch --only-lambda-apis`: process start to the first byte
# of the first response, median of ROUNDS (default 7). See scripts/lambda-cold-start.py for how
# each round is measured, and docs/profiling.md for the figures.
#
#   bash scripts/lambda-cold-start.sh [ROUNDS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rounds="${1:-7}"

tools="$(bash scripts/lambda-tools.sh | tail -n1)"
echo "==> build the three functions (release, DynamoDB store)" >&2
cargo build --release -p session-start -p token-refresh -p agent-turn --features chatfn/dynamodb >&2
bin_dir="${CARGO_TARGET_DIR:-$root/target}/release"

watch_pid=""
cleanup() {
  if [[ -n "$watch_pid" ]]; then kill -TERM -- "-$watch_pid" 2>/dev/null || true; fi
  if [[ -n "${CHATFN_DYNAMODB_LOCAL_PID:-}" ]]; then
    bash scripts/dynamodb-local.sh stop "$CHATFN_DYNAMODB_LOCAL_PID" >&2 || true
  fi
}
trap cleanup EXIT

eval "$(bash scripts/dynamodb-local.sh start | grep -E '^export [A-Z_]+=')"
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export CHATFN_STORE=dynamodb CHATFN_TABLE_NAME="chatfn-cold-start-$$"
"$tools/python" scripts/create-table.py "$CHATFN_TABLE_NAME" --template infra/template.yaml >&2
# The requests the script sends are refused before any model call; the model is only configured.
export CHATFN_SECRET_KEY="sk_cold_start_$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export CHATFN_MODEL_PROVIDER=openai CHATFN_MODEL=unused CHATFN_MODEL_API_KEY=unused
export CHATFN_MODEL_BASE_URL=http://127.0.0.1:9/v1

# shellcheck source=free-port.sh
source scripts/free-port.sh
port="$(free_port)"
setsid "$tools/cargo-lambda" lambda watch --only-lambda-apis --ignore-changes -A 127.0.0.1 -P "$port" \
  > "${TMPDIR:-/tmp}/chatfn-cold-start-watch.$$.log" 2>&1 < /dev/null &
watch_pid=$!
# A TCP connect, not an HTTP request: cargo lambda watch holds any request as an invocation.
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.2
done
echo "==> cold starts ($rounds rounds per function)" >&2
python3 scripts/lambda-cold-start.py "http://127.0.0.1:$port" "$bin_dir" "$rounds"
