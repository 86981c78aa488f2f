#!/usr/bin/env bash
# The Cloudflare side of chatfn: builds the Worker for wasm32 (functions/worker, toolchain from
# scripts/worker-tools.sh, cached; with the store conformance routes) and runs the store
# conformance suite on Durable Object storage and the scenario files of the stock npm clients against
# it under `wrangler dev` (workerd) with infra/wrangler.toml: each file starts its own Worker with
# persisted Durable Object storage and a mock model (tests/js/support/worker.js).
#
#   bash scripts/worker-e2e.sh [test files, default: the scenarios below]
#
# Also runs a native `cargo check` of the Worker crate, so it stays buildable off wasm too.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "==> cargo check -p chatfn-worker (native)"
cargo check -p chatfn-worker

echo "==> build the Worker for wasm32 (worker-build; toolchain installed once and cached)"
start=$SECONDS
bash scripts/worker-build.sh --test
echo "built in $((SECONDS - start)) s: $(du -h functions/worker/build/index_bg.wasm 2>/dev/null | cut -f1) of wasm"
echo "==> build the bank teller example's Worker (chatfn's Worker serving an agent of its own)"
bash scripts/worker-build.sh --dev examples/bank-teller/worker

echo "==> wrangler deploy --dry-run (infra/wrangler.toml: bindings, migrations, the bundle; offline)"
dry_run="$(mktemp -d "${TMPDIR:-/tmp}/chatfn-worker-deploy.XXXXXX")"
CHATFN_WORKER_PREBUILT=1 WRANGLER_SEND_METRICS=false CI=true \
  functions/worker/node_modules/.bin/wrangler deploy --dry-run --config infra/wrangler.toml \
  --outdir "$dry_run" 2>&1 | grep -E "Total Upload|env\.|dry-run|ERROR|✘" || true
compgen -G "$dry_run/*index_bg.wasm" > /dev/null || { echo "wrangler deploy --dry-run produced no bundle" >&2; exit 1; }
rm -rf "$dry_run"

if [[ $# -gt 0 ]]; then
  tests=("$@")
else
  tests=(
    test/00-sessions.test.js
    test/01-two-turns.test.js
    test/02-incremental.test.js
    test/03-tool-call.test.js
    test/04-resume.test.js
    test/05-stop.test.js
    test/07-bad-input.test.js
    test/08-disconnect.test.js
    test/11-trigger-turns.test.js
    test/12-trigger-reload.test.js
    test/13-trigger-stop.test.js
    test/14-trigger-token-refresh.test.js
    test/16-trigger-readers.test.js
    test/17-trigger-errors.test.js
    test/20-mcp-tools.test.js
    # Turn events: each file's Worker sends them to the test's receiver; the chat's alarm sweeps.
    test/21-turn-events.test.js
    # The stock agent on OpenAI's Responses API (the suite sets the provider).
    test/22-openai-responses.test.js
    # Usage limits (the suite sets them), actions, close.
    test/23-limits-and-actions.test.js
    # The sessions API: listing (the directory of chats), editing, retrieving and erasing.
    test/24-sessions-api.test.js
    worker/
  )
fi
bash scripts/npm-install.sh tests/js
bash scripts/npm-install.sh tests/mcp
echo "==> the stock npm clients against the Worker (wrangler dev)"
(cd tests/js && CHATFN_WORKER=1 node --test --test-concurrency=1 "${tests[@]}")
