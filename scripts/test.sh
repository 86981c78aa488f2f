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

step "Rust tests"
cargo test --workspace --all-features

step "build the local server for the end-to-end tests"
cargo build -p local
export CHATFN_LOCAL_BIN="$root/target/debug/chatfn-local"

step "install the npm clients (tests/js)"
bash "$root/scripts/npm-install.sh" "$root/tests/js"

step "end-to-end tests with the stock npm clients"
(cd tests/js && npm test)

step "AWS: the SAM template (sam validate --lint) and the Lambda functions end to end (cargo lambda watch)"
bash "$root/scripts/lambda-e2e.sh"

step "all tests passed"
