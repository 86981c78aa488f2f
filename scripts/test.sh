#!/usr/bin/env bash
# Runs every test of chatfn: formatting, lints, the Rust unit and integration tests, and the
# end-to-end tests that drive the local server with the stock npm clients. Installs what it
# needs (npm packages) and is quick when they are already there.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Each step's wall time, printed at the end (or where a step failed), so a slow run shows where
# its minutes went: a fresh machine's installs and builds against a warm cache's.
step_names=()
step_seconds=()
current_step=""
end_step() {
  if [[ -n "$current_step" ]]; then
    step_names+=("$current_step")
    step_seconds+=("$((SECONDS - current_start))")
  fi
  current_step=""
}
step() {
  end_step
  current_step="$*"
  current_start=$SECONDS
  step_offset="$(stat -c %s "$run_log" 2>/dev/null || echo 0)"
  printf '\n==> %s\n' "$*"
}
print_step_times() {
  end_step
  ((${#step_names[@]})) || return 0
  printf '\n==> time per step (%d s in all)\n' "$SECONDS"
  local i
  for i in "${!step_names[@]}"; do
    printf '%6d s  %.90s\n' "${step_seconds[$i]}" "${step_names[$i]}"
  done
}

# Everything this script prints is also kept in a file, so that a failed step can be summed up
# in a few lines at the very end, where a CI log's tail shows them: a failing test may print
# pages of server logs after its assertion.
run_log="$(mktemp -t chatfn-test.XXXXXX)"
exec > >(tee -a "$run_log") 2>&1
step_offset=0
print_failure_summary() {
  local status="$1" name="$2"
  ((status != 0)) || return 0
  sleep 0.2 # the last lines through tee
  printf '\n==> step "%.90s" failed (exit %d); what it said of the failure:\n' "${name:-?}" "$status"
  tail -c +"$((step_offset + 1))" "$run_log" \
    | grep -a -E -A2 '^ *not ok |^ *error: |panicked at|^test .* FAILED|^error(\[|:)|AssertionError|ERR!|Error: ' \
    | grep -a -v -E '^ *(\{|---$|duration_ms|type: )' | cut -c1-300 | head -n 16 || true
  printf '(the whole output: %s)\n' "$run_log"
}

stop_dynamodb_local() {
  if [[ -n "${CHATFN_DYNAMODB_LOCAL_PID:-}" ]]; then
    kill "$CHATFN_DYNAMODB_LOCAL_PID" 2>/dev/null || true
  fi
}
trap 'status=$?; failed_step="$current_step"; stop_dynamodb_local; print_step_times; print_failure_summary "$status" "$failed_step"' EXIT

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "start DynamoDB Local (for the DynamoDB store's tests)"
eval "$(bash "$root/scripts/dynamodb-local.sh" start)"
export AWS_ENDPOINT_URL_DYNAMODB

step "install the reference MCP server (tests/mcp, for the MCP tests in Rust and tests/js)"
bash "$root/scripts/npm-install.sh" "$root/tests/mcp"

step "Rust tests"
cargo test --workspace --all-features

step "fuzz the parsers for a bounded time (scripts/fuzz.sh: cargo fuzz, every target)"
# The fuzz build is kept beside the tools, so a later run rebuilds only what changed.
CHATFN_FUZZ_TARGET_DIR="${CHATFN_TOOLS_DIR:-$HOME/.cache/chatfn}/fuzz-target" \
  bash "$root/scripts/fuzz.sh" "${CHATFN_FUZZ_SECONDS:-10}"

step "build the local server for the end-to-end tests"
cargo build -p local
export CHATFN_LOCAL_BIN="$root/target/debug/chatfn-local"

step "install the npm clients (tests/js)"
bash "$root/scripts/npm-install.sh" "$root/tests/js"

step "end-to-end tests with the stock npm clients"
(cd tests/js && npm test)

step "load: 1,000 chats at once on the local server, each with a resume and a stop; invariants checked"
(cd tests/js && node --test load/)

step "soak: 75 s of steady mixed load on the local server (SQLite); RSS, files, threads flat"
bash "$root/scripts/soak.sh" --minutes 1.25

step "the benchmark command, briefly (scripts/bench.sh --quick: debug builds, a few seconds of load)"
bash "$root/scripts/bench.sh" --quick

step "the research desk's generated TypeScript against the ai package's types (tsc)"
bash "$root/scripts/npm-install.sh" "$root/examples/research-desk/web"
(cd examples/research-desk/web && npx --no-install tsc --noEmit)

step "AWS: the SAM template (sam validate --lint) and the Lambda functions end to end, a 75 s soak too (cargo lambda watch)"
bash "$root/scripts/lambda-e2e.sh"

step "AWS: the deploy build (scripts/sam-build.sh: sam build, four arm64 bootstraps checked)"
# Kept beside the tools, as the fuzz build is: a later run recompiles only what changed.
CHATFN_SAM_TARGET_DIR="${CHATFN_TOOLS_DIR:-$HOME/.cache/chatfn}/sam-target" \
  bash "$root/scripts/sam-build.sh"

step "AWS: the template with each option, the settings it refuses, the nested stack (template-check.sh)"
bash "$root/scripts/template-check.sh"

step "Cloudflare: the Worker built for wasm32 and the stock npm clients against it under wrangler dev"
bash "$root/scripts/worker-e2e.sh"

# --- The chat page (web/) in a real browser: Debian's Chromium driven by playwright-core. ---
step "install Chromium for the browser tests (Debian's package; skipped when present)"
if [[ ! -x /usr/bin/chromium ]]; then
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

step "build the chat page (web/ → web/dist; skipped when its sources are unchanged)"
bash "$root/scripts/build-web.sh"

step "install the browser test packages (tests/browser)"
bash "$root/scripts/npm-install.sh" "$root/tests/browser"

step "the chat page in Chromium (tests/browser)"
(cd tests/browser && npm test)
# --- end of the browser tests ---

echo
echo "==> all tests passed"
