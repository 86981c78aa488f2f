#!/usr/bin/env bash
# Builds a Cloudflare Worker crate (functions/worker, or another one given as the last argument,
# such as examples/bank-teller/worker) into its build/ folder with worker-build: the wasm module,
# its bindings and the ES module shim that wrangler serves and deploys.
#
#   bash scripts/worker-build.sh            # release build, optimised with wasm-opt (deploys)
#   bash scripts/worker-build.sh --dev      # unoptimised, quicker to build (local runs)
#   bash scripts/worker-build.sh --test     # --dev plus the store conformance routes (local tests)
#   bash scripts/worker-build.sh [--dev | --test] examples/bank-teller/worker
#
# The toolchain comes from scripts/worker-tools.sh (installed once, cached). The wasm build has
# its own target folder (target/worker): it is compiled by another rustc than the native one.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode=release
crate=functions/worker
for arg in "$@"; do
  case "$arg" in
    --dev) mode=dev ;;
    --test) mode=test ;;
    -*) echo "usage: bash scripts/worker-build.sh [--dev | --test] [crate folder]" >&2; exit 2 ;;
    *) crate="$arg" ;;
  esac
done
case "$mode" in
  release) profile=(--release) ;;
  dev) profile=(--dev --no-opt) ;;
  test) profile=(--dev --no-opt . -- --features store-conformance) ;;
esac
crate_dir="$(cd "$root/$crate" 2>/dev/null && pwd)" || { echo "no crate folder $crate" >&2; exit 2; }
# The local tests build once, then start wrangler dev many times: keep that build.
if [[ -n "${CHATFN_WORKER_PREBUILT:-}" && -f "$crate_dir/build/index.js" ]]; then
  echo "using the existing build (CHATFN_WORKER_PREBUILT)" >&2
  exit 0
fi
eval "$(bash "$root/scripts/worker-tools.sh" | tail -n1)"
export CARGO_TARGET_DIR="$root/target/worker"
cd "$crate_dir"
worker-build "${profile[@]}" >&2
echo "built $crate_dir/build/index.js" >&2
