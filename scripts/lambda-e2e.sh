#!/usr/bin/env bash
# The AWS side of chatfn: `sam validate --lint` of infra/template.yaml (offline), then
# end-to-end tests of the three Lambda functions: `cargo lambda watch` serves Lambda's runtime
# API and function URLs (response streaming for agent-turn), the script starts the instances (one
# process each, one invocation at a time, as on Lambda), DynamoDB Local holds the table
# of infra/template.yaml, a mock OpenAI server answers, and the stock npm clients drive them
# through a path router like the template's CloudFront front door (tests/js/support/lambda-router.js).
#
# Telemetry as deployed: the functions log JSON (every line of their output is checked to be one
# JSON object with time, level, message and target, and a turn's lines to carry its chat id), and
# export traces over OTLP/HTTP (the default protocol, http/protobuf) to a receiver of this
# script's own (scripts/otlp-receiver.py); tests/js/lambda/traces.test.js checks a turn's trace.
#
#   bash scripts/lambda-e2e.sh [test files, default: the scenarios below]
#
# CHATFN_LAMBDA_INSTANCES sets the instances of each function (16); the load test gets two
# agent-turn instances per chat.
#
# The keys as deployed: the functions read the secret key and the model key at start-up from
# Secrets Manager (here moto's server, scripts/secrets-local.sh), by the secrets' names; the
# instances get neither key in their environment.
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
instance_pids=()
dynamo_pid=""
secrets_pid=""
otlp_pid=""
cleanup() {
  local status=$?
  if (( ${#instance_pids[@]} > 0 )); then
    # Disowned first, so the shell does not report each as killed.
    local pid
    for pid in "${instance_pids[@]}"; do disown "$pid" 2>/dev/null || true; done
    kill -KILL "${instance_pids[@]}" 2>/dev/null || true
  fi
  if [[ -n "$otlp_pid" ]]; then kill "$otlp_pid" 2>/dev/null || true; fi
  # cargo lambda watch leads its own process group (setsid).
  if [[ -n "$watch_pid" ]]; then
    kill -TERM -- "-$watch_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$watch_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$watch_pid" 2>/dev/null || true
  fi
  if [[ -n "$dynamo_pid" ]]; then
    kill "$dynamo_pid" 2>/dev/null || true
  fi
  if [[ -n "$secrets_pid" ]]; then
    kill "$secrets_pid" 2>/dev/null || true
  fi
  if [[ $status -ne 0 && -f "$work/watch.log" ]]; then
    echo "--- last lines of cargo lambda watch ($work/watch.log) ---" >&2
    tail -n 30 "$work/watch.log" >&2 || true
  fi
  if [[ $status -ne 0 && -f "$work/functions.log" ]]; then
    echo "--- last lines of the functions ($work/functions.log) ---" >&2
    tail -n 60 "$work/functions.log" >&2 || true
  fi
  if [[ $status -eq 0 && -z "${CHATFN_LAMBDA_E2E_KEEP:-}" ]]; then rm -rf "$work"; else echo "logs kept in $work" >&2; fi
  exit $status
}
trap cleanup EXIT

# shellcheck source=free-port.sh
source "$(dirname "${BASH_SOURCE[0]}")/free-port.sh"

# Credentials and a region for the local stand-ins (DynamoDB Local, moto): they only have to exist.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

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
# The tests call with the secret key (CHATFN_SECRET_KEY); the instances read it, and the model
# key, from the secrets named below (start_instances leaves the plain variables out).
export CHATFN_SECRET_KEY="sk_lambda_e2e_$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export CHATFN_MODEL_PROVIDER=openai CHATFN_MODEL=mock-model CHATFN_MODEL_API_KEY=test-key
# It prints `export AWS_ENDPOINT_URL_SECRETS_MANAGER=…` and `export CHATFN_SECRETS_LOCAL_PID=…`.
out="$(bash scripts/secrets-local.sh start)"
eval "$(grep -E '^export [A-Z_]+=' <<< "$out")"
secrets_pid="$CHATFN_SECRETS_LOCAL_PID"
echo "Secrets Manager stand-in (moto) at $AWS_ENDPOINT_URL_SECRETS_MANAGER (PID $secrets_pid)"
export CHATFN_SECRET_KEY_SECRET=chatfn/secret-key CHATFN_MODEL_API_KEY_SECRET=chatfn/model-api-key
printf %s "$CHATFN_SECRET_KEY" | bash scripts/secrets-local.sh put "$CHATFN_SECRET_KEY_SECRET"
printf %s "$CHATFN_MODEL_API_KEY" | bash scripts/secrets-local.sh put "$CHATFN_MODEL_API_KEY_SECRET"
export CHATFN_MODEL_BASE_URL="http://127.0.0.1:$mock_port/v1"
export RUST_LOG="${RUST_LOG:-info}" NO_COLOR=1
# As deployed: the function URL (here cargo lambda's own CORS) answers browsers.
export CHATFN_LAMBDA_URL_CORS=true
# MCP servers on ports chosen now, since the functions read their configuration once: the MCP
# test starts the servers on these ports (tests/js/support/mcp-servers.js, the same servers).
mcp_reference_port="$(free_port)" mcp_own_port="$(free_port)" mcp_silent_port="$(free_port)"
export CHATFN_E2E_MCP_PORTS="$mcp_reference_port,$mcp_own_port,$mcp_silent_port"
export CHATFN_MCP_SERVERS="[{\"name\": \"everything\", \"url\": \"http://127.0.0.1:$mcp_reference_port/mcp\"},
  {\"name\": \"files\", \"url\": \"http://127.0.0.1:$mcp_own_port/mcp\"},
  {\"name\": \"silent\", \"url\": \"http://127.0.0.1:$mcp_silent_port/mcp\", \"timeout\": \"2s\"}]"
export CHATFN_APPROVAL_TOOLS=files_read
# As deployed (the default there, said here all the same): JSON lines.
export CHATFN_LOG_FORMAT=json

# --- traces: an OTLP/HTTP receiver of the test's own ---------------------------------------------
# It writes each span it gets as a JSON line to spans.jsonl. The batch processor's own schedule is
# ten minutes, so only the functions' flush before each invocation ends can send spans in time.
: > "$work/spans.jsonl"
"$tools/python" scripts/otlp-receiver.py "$work/spans.jsonl" > "$work/otlp.port" 2> "$work/otlp.log" &
otlp_pid=$!
for _ in $(seq 100); do [[ -s "$work/otlp.port" ]] && break; sleep 0.1; done
otlp_port="$(head -n1 "$work/otlp.port")"
[[ "$otlp_port" =~ ^[0-9]+$ ]] || { echo "the OTLP receiver did not start: $(cat "$work/otlp.log")" >&2; exit 1; }
echo "OTLP receiver on 127.0.0.1:$otlp_port (PID $otlp_pid)"
export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$otlp_port" OTEL_BSP_SCHEDULE_DELAY=600000
unset OTEL_EXPORTER_OTLP_PROTOCOL OTEL_EXPORTER_OTLP_TRACES_ENDPOINT

# --- turn events (issue 26): the receiver's address, and the event sweeper ----------------------
# The functions read their configuration once, so the webhook receiver's port and secret are
# chosen now: tests/js/test/21-turn-events.test.js starts the receiver on them and verifies every
# delivery with the npm standardwebhooks package. The sweeper (functions/event-sweeper, on a
# schedule on AWS) runs as one more instance, invoked by that test as the schedule would.
export CHATFN_E2E_WEBHOOK_PORT="$(free_port)"
export CHATFN_E2E_WEBHOOK_SECRET="whsec_$(head -c 32 /dev/urandom | base64 -w0)"
export CHATFN_WEBHOOK_URL="http://127.0.0.1:$CHATFN_E2E_WEBHOOK_PORT/hooks/chatfn"
export CHATFN_WEBHOOK_SECRET="$CHATFN_E2E_WEBHOOK_SECRET"
# --- end of turn events --------------------------------------------------------------------------

echo "==> build the functions (as cargo lambda watch runs them)"
cargo build -p session-start -p token-refresh -p agent-turn -p event-sweeper --features "$features"
# The instances run copies: a target folder shared with other checkouts may get other builds of
# the same binaries while this run goes on.
mkdir -p "$work/bin"
for fn in session-start token-refresh agent-turn event-sweeper; do cp "$CARGO_TARGET_DIR/debug/$fn" "$work/bin/"; done

# cargo lambda watch serves the Lambda APIs (the runtime API the functions poll, and the function
# URLs) and this script starts the instances, as Lambda does: each one process that takes one
# invocation at a time. Started by cargo lambda watch itself, each instance is a `cargo run`,
# and these queue on cargo's package cache lock: asked for hundreds at once, it piles up cargo
# processes (90 MB each) faster than they start. The load test needs about two instances per
# chat, ready before its burst: with 100 invocations of one function waiting, cargo lambda
# watch 1.9.2 deadlocks for good (its per-function queue is a channel of 100, pushed to while
# holding the lock that instances need to take from it).
# No --timeout: with one, cargo lambda watch 1.9.2 ends idle instances' long polls without an
# invocation and lambda_runtime panics (it still gives every invocation a 600 s deadline).
echo "==> cargo lambda watch on 127.0.0.1:$lambda_port (store: $store)"
: > "$work/watch.log"
setsid cargo lambda watch --only-lambda-apis --ignore-changes -A 127.0.0.1 -P "$lambda_port" \
  --features "$features" >> "$work/watch.log" 2>&1 < /dev/null &
watch_pid=$!
until (: < "/dev/tcp/127.0.0.1/$lambda_port") 2>/dev/null; do
  kill -0 "$watch_pid" 2>/dev/null || { echo "cargo lambda watch exited" >&2; exit 1; }
  sleep 0.2
done

# The established connections to cargo lambda watch: an idle instance holds one, polling.
connections() {
  awk -v port="$(printf ':%04X' "$lambda_port")" '$3 ~ port "$" && $4 == "01"' /proc/net/tcp /proc/net/tcp6 | wc -l
}
# Starts `count` more instances of function `fn` and waits until they poll for invocations.
start_instances() {
  local fn="$1" count="$2" before i
  before="$(connections)"
  for ((i = 0; i < count; i++)); do
    AWS_LAMBDA_FUNCTION_NAME="$fn" AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$lambda_port/.rt/$fn" \
      AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1024 OTEL_SERVICE_NAME="$fn" \
      env -u CHATFN_SECRET_KEY -u CHATFN_MODEL_API_KEY \
      "$work/bin/$fn" >> "$work/functions.log" 2>&1 < /dev/null &
    instance_pids+=("$!")
  done
  local deadline=$((SECONDS + 120))
  until (( $(connections) >= before + count )); do
    if (( SECONDS > deadline )); then echo "$count instances of $fn did not start polling within 120 s" >&2; exit 1; fi
    sleep 0.2
  done
}

instances="${CHATFN_LAMBDA_INSTANCES:-16}"
for fn in session-start token-refresh agent-turn; do
  started=$SECONDS
  start_instances "$fn" "$instances"
  echo "$fn: $instances instances polling after $((SECONDS - started)) s"
done
# Turn events: one sweeper instance, as the schedule invokes one at a time.
start_instances event-sweeper 1
echo "event-sweeper: 1 instance polling"

# Each function answers a JSON 404 for a route it does not own: that is the sign it runs.
for fn in session-start token-refresh agent-turn; do
  body="$(curl -s --max-time 60 "http://127.0.0.1:$lambda_port/lambda-url/$fn/chatfn-ready" -w '\n%{time_starttransfer}')"
  grep -q '"code":"not_found"' <<< "$body" || { echo "$fn did not answer: $body" >&2; exit 1; }
  echo "$fn answers ($(tail -n1 <<< "$body") s to the first byte)"
done

# --- the scenarios -------------------------------------------------------------------------------
# Each group is one `node --test` run, in order: the load test last, on its own, so that a jam
# under load cannot be mistaken for a scenario's failure.
if [[ $# -gt 0 ]]; then
  groups=("$*")
else
  groups=(
    # First and on its own: a function that found the MCP servers down (before this test
    # starts them) leaves them out for 30 s.
    "test/20-mcp-tools.test.js"
    "test/00-sessions.test.js test/01-two-turns.test.js test/02-incremental.test.js \
     test/03-tool-call.test.js test/04-resume.test.js test/05-stop.test.js \
     test/07-bad-input.test.js test/08-disconnect.test.js lambda/"
    # Turn events: the receiver on CHATFN_E2E_WEBHOOK_PORT, the sweeper invoked by the test.
    "test/21-turn-events.test.js"
    # The stock agent on OpenAI's Responses API: agent-turn instances of their own (below).
    "test/22-openai-responses.test.js"
    # Usage limits: two agent-turn instances with the limits of the test file, which must
    # share one count (below); actions, close, and sessions.close mid-reply.
    "test/23-limits-and-actions.test.js"
    # The sessions API: listing, editing and erasing, the table scanned after an erase.
    "test/24-sessions-api.test.js"
    # The soak (scripts/soak.sh --host lambda runs it alone): before the load test, so that
    # the instances it watches are the configured ones, not the load test's hundreds.
    "soak/"
    "load/"
  )
fi

# Replaces every agent-turn instance with `count` new ones, started with the environment's
# assignments given after the count (the functions read their configuration once, at start).
replace_agent_turns() {
  local count="$1"
  shift
  local pid
  # Disowned first, so the shell does not report each as killed.
  for pid in $(pgrep -P $$ -x agent-turn); do disown "$pid" 2>/dev/null || true; done
  pkill -KILL -P $$ -x agent-turn || true
  while pgrep -P $$ -x agent-turn > /dev/null; do sleep 0.1; done
  local assignment
  # Exported to the instances for this call only.
  for assignment in "$@"; do local -x "${assignment?}"; done
  start_instances agent-turn "$count"
}
responses_env=(CHATFN_MODEL_PROVIDER=openai-responses CHATFN_MODEL=gpt-5-mini)
# The values of LIMITS_ENV in tests/js/test/23-limits-and-actions.test.js.
limits_env=(CHATFN_MAX_TURNS_PER_MINUTE=2 CHATFN_MAX_OUTPUT_TOKENS_PER_DAY=300)
bash scripts/npm-install.sh tests/js
bash scripts/npm-install.sh tests/mcp
for group in "${groups[@]}"; do
  if [[ " $group " == *" load/ "* ]]; then
    # As Lambda scales out on a burst: two agent-turn instances per chat (a turn and its resume
    # or its stop run at once), ready before the burst (see above). The test's plan says how many
    # chats (CHATFN_LOAD_CHATS, CHATFN_SOAK; tests/js/load/plan.js).
    chats="$(cd tests/js && CHATFN_LOAD_HOST=lambda node load/plan.js)"
    # Counted, not remembered: a scenario may have killed one.
    running="$(pgrep -c -P $$ -x agent-turn || true)"
    more=$((2 * chats - running))
    if (( more > 0 )); then
      started=$SECONDS
      start_instances agent-turn "$more"
      echo "agent-turn: $((running + more)) instances polling ($more more after $((SECONDS - started)) s)"
    fi
  fi
  if [[ " $group " == *" test/22-openai-responses.test.js "* ]]; then
    replace_agent_turns 4 "${responses_env[@]}"
    echo "agent-turn: 4 instances on the openai-responses provider"
  fi
  if [[ " $group " == *" test/23-limits-and-actions.test.js "* ]]; then
    replace_agent_turns 2 "${limits_env[@]}"
    echo "agent-turn: 2 instances with usage limits (${limits_env[*]})"
  fi
  echo "==> the stock npm clients against the Lambda functions: $group"
  (
    cd tests/js
    # shellcheck disable=SC2086 # a group is a list of paths
    CHATFN_LAMBDA_URL="http://127.0.0.1:$lambda_port" CHATFN_LAMBDA_LOG="$work/functions.log" \
      CHATFN_LAMBDA_INSTANCES_PARENT="$$" CHATFN_OTLP_SPANS="$work/spans.jsonl" \
      MOCK_OPENAI_PORT="$mock_port" node --test --test-concurrency=1 $group
  )
  if [[ " $group " == *" test/22-openai-responses.test.js "* || " $group " == *" test/23-limits-and-actions.test.js "* ]]; then
    replace_agent_turns "$instances"
    echo "agent-turn: $instances instances as configured above again"
  fi
done

# --- the functions' logs -------------------------------------------------------------------------
echo "==> the functions' output: one JSON object a line ($work/functions.log)"
"$tools/python" scripts/check-json-logs.py "$work/functions.log"

# --- memory --------------------------------------------------------------------------------------
# An instance serves one invocation at a time, as on Lambda: its peak resident memory is what the
# template's MemorySize must hold (docs/profiling.md, "Lambda memory size"). Debug builds map
# more code than the deployed release build, so this is an upper bound.
echo "==> peak resident memory of the instances (VmHWM)"
for fn in session-start token-refresh agent-turn event-sweeper; do
  peak_kib=0 count=0
  for pid in $(pgrep -P $$ -x "$fn"); do
    kib="$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
    [[ -n "$kib" ]] || continue
    count=$((count + 1))
    (( kib > peak_kib )) && peak_kib=$kib
  done
  echo "$fn: $((peak_kib / 1024)) MiB at most over $count instances"
done
