#!/usr/bin/env bash
# Builds the Cloudflare Worker (functions/worker) into functions/worker/build with worker-build:
# the wasm module, its bindings and the ES module shim that wrangler serves and deploys.
#
#   bash scripts/worker-build.sh            # release build, optimised with wasm-opt (deploys)
#   bash scripts/worker-build.sh --dev      # unoptimised, quicker to build (local runs)
#   bash scripts/worker-build.sh --test     # --dev plus the store conformance routes (local tests)
#
# The toolchain comes from scripts/worker-tools.sh (installed once, cached). The wasm build has
# its own target folder (target/worker): it is compiled by another rustc than the native one.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${1:-}" in
  "") profile=(--release) ;;
  --dev) profile=(--dev --no-opt) ;;
  --test) profile=(--dev --no-opt . -- --features store-conformance) ;;
  *) echo "usage: bash scripts/worker-build.sh [--dev | --test]" >&2; exit 2 ;;
esac
# The local tests build once, then start wrangler dev many times: keep that build.
if [[ -n "${CHATFN_WORKER_PREBUILT:-}" && -f "$root/functions/worker/build/index.js" ]]; then
  echo "using the existing build (CHATFN_WORKER_PREBUILT)" >&2
  exit 0
fi
eval "$(bash "$root/scripts/worker-tools.sh" | tail -n1)"
export CARGO_TARGET_DIR="$root/target/worker"
cd "$root/functions/worker"
worker-build "${profile[@]}" >&2
echo "built $root/functions/worker/build/index.js" >&2
