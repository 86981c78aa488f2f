#!/usr/bin/env bash
# The soak: a server under a steady mixed load (sends, resumes, stops, idle Trigger readers, bad
# requests) for a bounded time, its resident memory, open files and threads judged flat after
# warm-up, and every chat checked against the load test's invariants (tests/js/soak/).
#
#   bash scripts/soak.sh [--minutes N] [--host local|lambda]
#
# --minutes: how long the load runs (1.25 by default; decimals are fine).
# --host local: chatfn-local with its default store (a SQLite file in a fresh data folder),
#   the debug build (CHATFN_LOCAL_BIN picks another binary).
# --host lambda: the three Lambda functions under cargo lambda watch, started as
#   scripts/lambda-e2e.sh starts them (it runs the soak as its only scenario group).
# CHATFN_SOAK_CHATS and CHATFN_SOAK_READERS set the load (tests/js/soak/soak.test.js);
# CHATFN_SOAK_SAMPLES_FILE keeps every sample.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

minutes=1.25
host=local
while (($#)); do
  case "$1" in
    --minutes) minutes="${2:?--minutes needs a number}"; shift 2 ;;
    --host) host="${2:?--host needs local or lambda}"; shift 2 ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
seconds="$(awk -v m="$minutes" 'BEGIN { if (m + 0 <= 0) exit 1; printf "%d", m * 60 + 0.5 }')" \
  || { echo "soak.sh: --minutes must be a positive number (got $minutes)" >&2; exit 2; }
export CHATFN_SOAK_SECONDS="$seconds"

case "$host" in
  local)
    if [[ -z "${CHATFN_LOCAL_BIN:-}" ]]; then
      cargo build -p local --bin chatfn-local
      export CHATFN_LOCAL_BIN="$CARGO_TARGET_DIR/debug/chatfn-local"
    fi
    bash scripts/npm-install.sh tests/js
    echo "==> soak of the local server (SQLite store) for $seconds s"
    (cd tests/js && node --test --test-concurrency=1 soak/)
    ;;
  lambda)
    echo "==> soak of the Lambda functions for $seconds s (scripts/lambda-e2e.sh soak/)"
    bash scripts/lambda-e2e.sh soak/
    ;;
  *) echo "soak.sh: --host must be local or lambda (got $host)" >&2; exit 2 ;;
esac
