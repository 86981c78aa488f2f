#!/usr/bin/env bash
# Runs every test of chatfn: formatting, lints, the Rust unit and integration tests, and the
# end-to-end tests that drive the local server with the stock npm clients. Installs what it
# needs (npm packages) and is quick when they are already there.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "start DynamoDB Local (for the DynamoDB store's tests)"
stop_dynamodb_local() {
  if [[ -n "${CHATFN_DYNAMODB_LOCAL_PID:-}" ]]; then
    kill "$CHATFN_DYNAMODB_LOCAL_PID" 2>/dev/null || true
  fi
}
trap stop_dynamodb_local EXIT
eval "$(bash "$root/scripts/dynamodb-local.sh" start)"
export AWS_ENDPOINT_URL_DYNAMODB

step "Rust tests"
cargo test --workspace --all-features

step "build the local server for the end-to-end tests"
cargo build -p local
export CHATFN_LOCAL_BIN="$root/target/debug/chatfn-local"

step "install the npm clients (tests/js)"
bash "$root/scripts/npm-install.sh" "$root/tests/js"

step "end-to-end tests with the stock npm clients"
(cd tests/js && npm test)

step "all tests passed"
