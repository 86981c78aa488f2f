#!/usr/bin/env bash
# The AWS side of chatfn: `sam validate --lint` of infra/template.yaml (offline), then
# end-to-end tests of the three Lambda functions: `cargo lambda watch` runs them as Lambda does
# (one process per instance, response streaming for agent-turn), DynamoDB Local holds the table
# of infra/template.yaml, a mock OpenAI server answers, and the stock npm clients drive them
# through a path router like the template's CloudFront front door (tests/js/support/lambda-router.js).
#
#   bash scripts/lambda-e2e.sh [test files, default: the scenarios below]
#
# The store: DynamoDB Local when this checkout has the DynamoDB store (scripts/dynamodb-local.sh);
# without it, a SQLite file the three functions share (a local stand-in, loudly so). Force one
# with CHATFN_LAMBDA_E2E_STORE=dynamodb|sqlite. CHATFN_LAMBDA_E2E_KEEP=1 keeps the logs of a passing run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

tools="$(bash "$root/scripts/lambda-tools.sh" | tail -n1)"
export PATH="$tools:$PATH"

echo "==> sam validate --lint (infra/template.yaml, offline)"
# No AWS account is needed: the credentials only have to exist.
AWS_ACCESS_KEY_ID=validate AWS_SECRET_ACCESS_KEY=validate AWS_SESSION_TOKEN= \
  SAM_CLI_TELEMETRY=0 sam validate --lint --region us-east-1 -t infra/template.yaml

work="$(mktemp -d "${TMPDIR:-/tmp}/chatfn-lambda-e2e.XXXXXX")"
watch_pid=""
dynamo_pid=""
cleanup() {
  local status=$?
  # cargo lambda watch leads its own process group (setsid): stop it and the functions it runs.
  if [[ -n "$watch_pid" ]]; then
    kill -TERM -- "-$watch_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$watch_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$watch_pid" 2>/dev/null || true
  fi
  if [[ -n "$dynamo_pid" ]]; then
    kill "$dynamo_pid" 2>/dev/null || true
  fi
  if [[ $status -ne 0 && -f "$work/watch.log" ]]; then
    echo "--- last lines of cargo lambda watch ($work/watch.log) ---" >&2
    tail -n 60 "$work/watch.log" >&2 || true
  fi
  if [[ $status -eq 0 && -z "${CHATFN_LAMBDA_E2E_KEEP:-}" ]]; then rm -rf "$work"; else echo "logs kept in $work" >&2; fi
  exit $status
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- the store -----------------------------------------------------------------------------------
store="${CHATFN_LAMBDA_E2E_STORE:-}"
if [[ -z "$store" ]]; then
  if [[ -f scripts/dynamodb-local.sh ]] && compgen -G "shared/src/store/dynamodb*" > /dev/null; then
    store=dynamodb
  else
    store=sqlite
  fi
fi
case "$store" in
  dynamodb)
    features="chatfn/dynamodb"
    # It prints `export AWS_ENDPOINT_URL_DYNAMODB=…` and `export CHATFN_DYNAMODB_LOCAL_PID=…`.
    out="$(bash scripts/dynamodb-local.sh start)"
    grep -q '^export AWS_ENDPOINT_URL_DYNAMODB=' <<< "$out" \
      || { echo "scripts/dynamodb-local.sh start printed no endpoint: $out" >&2; exit 1; }
    eval "$(grep -E '^export [A-Z_]+=' <<< "$out")"
    dynamo_pid="${CHATFN_DYNAMODB_LOCAL_PID:-$(grep -ioE 'pid[^0-9]*[0-9]+' <<< "$out" | grep -oE '[0-9]+$' | tail -n1 || true)}"
    echo "DynamoDB Local at $AWS_ENDPOINT_URL_DYNAMODB (PID $dynamo_pid)"
    export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
    export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
    export CHATFN_STORE=dynamodb CHATFN_TABLE_NAME="chatfn-lambda-e2e-$$"
    # The table exactly as infra/template.yaml defines it.
    "$tools/python" scripts/create-table.py "$CHATFN_TABLE_NAME" --template infra/template.yaml
    ;;
  sqlite)
    features="chatfn/sqlite"
    cat >&2 <<EOF

  NOTE: the DynamoDB store is not in this checkout, so the Lambda functions share a SQLite file
  (CHATFN_STORE=sqlite:…, a local stand-in). Once the DynamoDB store lands, this script uses
  DynamoDB Local instead.

EOF
    export CHATFN_STORE="sqlite:$work/chatfn.sqlite3"
    ;;
  *) echo "CHATFN_LAMBDA_E2E_STORE must be dynamodb or sqlite (got $store)" >&2; exit 2 ;;
esac

# --- the functions' environment ------------------------------------------------------------------
mock_port="$(free_port)"
lambda_port="$(free_port)"
export CHATFN_SECRET_KEY="sk_lambda_e2e_$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export CHATFN_MODEL_PROVIDER=openai CHATFN_MODEL=mock-model CHATFN_MODEL_API_KEY=test-key
export CHATFN_MODEL_BASE_URL="http://127.0.0.1:$mock_port/v1"
export RUST_LOG="${RUST_LOG:-info}" NO_COLOR=1
# As deployed: the function URL (here cargo lambda's own CORS) answers browsers.
export CHATFN_LAMBDA_URL_CORS=true

echo "==> build the three functions (as cargo lambda watch runs them)"
cargo build -p session-start -p token-refresh -p agent-turn --features "$features"

# No --timeout: with one, cargo lambda watch 1.9.2 ends idle instances' long polls without an
# invocation and lambda_runtime panics (it still gives every invocation a 600 s deadline).
echo "==> cargo lambda watch on 127.0.0.1:$lambda_port (store: $store)"
# Up to 32 instances of each function, as Lambda scales out: the load test runs 200 chats at once,
# and a stop or a resume must not queue behind the streams it is about.
setsid cargo lambda watch --ignore-changes -A 127.0.0.1 -P "$lambda_port" --concurrency 32 \
  --features "$features" > "$work/watch.log" 2>&1 < /dev/null &
watch_pid=$!

# Each function answers a JSON 404 for a route it does not own: that is the sign it runs. The
# first answer also times a cold start (process start, init, first request).
for fn in session-start token-refresh agent-turn; do
  deadline=$((SECONDS + 300))
  until body="$(curl -s --max-time 60 "http://127.0.0.1:$lambda_port/lambda-url/$fn/chatfn-ready" \
      -w '\n%{time_starttransfer}')" && grep -q '"code":"not_found"' <<< "$body"; do
    kill -0 "$watch_pid" 2>/dev/null || { echo "cargo lambda watch exited" >&2; exit 1; }
    if (( SECONDS > deadline )); then echo "$fn did not answer within 300 s" >&2; exit 1; fi
    sleep 1
  done
  echo "$fn answers (first request: $(tail -n1 <<< "$body") s to the first byte, including cargo run)"
done

# --- the scenarios -------------------------------------------------------------------------------
# Each group is one `node --test` run, in order: the load test last, on its own, so that a jam
# under load cannot be mistaken for a scenario's failure.
if [[ $# -gt 0 ]]; then
  groups=("$*")
else
  groups=(
    "test/00-sessions.test.js test/01-two-turns.test.js test/02-incremental.test.js \
     test/03-tool-call.test.js test/04-resume.test.js test/05-stop.test.js \
     test/07-bad-input.test.js test/08-disconnect.test.js lambda/"
    "load/"
  )
fi
bash scripts/npm-install.sh tests/js
for group in "${groups[@]}"; do
  echo "==> the stock npm clients against the Lambda functions: $group"
  (
    cd tests/js
    # shellcheck disable=SC2086 # a group is a list of paths
    CHATFN_LAMBDA_URL="http://127.0.0.1:$lambda_port" CHATFN_LAMBDA_LOG="$work/watch.log" \
      CHATFN_LAMBDA_WATCH_PID="$watch_pid" \
      MOCK_OPENAI_PORT="$mock_port" node --test --test-concurrency=1 $group
  )
done
