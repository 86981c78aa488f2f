#!/usr/bin/env bash
# The Worker's size and start, beside the Lambda cold start (scripts/lambda-cold-start.sh):
# builds the release Worker (wasm-opt, as `wrangler deploy` ships it), prints its wasm size raw
# and gzipped (Cloudflare's size limits and start time go by the compressed upload), then starts
# it ROUNDS times (default 5) under wrangler dev and prints the medians of
# scripts/worker-cold-start.mjs. The last line is one JSON object with every figure.
#
#   bash scripts/worker-cold-start.sh [ROUNDS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rounds="${1:-5}"

echo "==> build the Worker (release, wasm-opt)" >&2
bash scripts/worker-build.sh >&2
wasm=functions/worker/build/index_bg.wasm
wasm_bytes=$(stat -c %s "$wasm")
wasm_gzip_bytes=$(gzip -9 -c "$wasm" | wc -c)
bash scripts/npm-install.sh tests/js >&2
echo "==> $rounds fresh starts under wrangler dev" >&2
starts="$(node scripts/worker-cold-start.mjs "$rounds")"
python3 - "$wasm_bytes" "$wasm_gzip_bytes" "$starts" <<'PY'
import json, sys
figures = json.loads(sys.argv[3])
figures["wasm_bytes"] = int(sys.argv[1])
figures["wasm_gzip_bytes"] = int(sys.argv[2])
print(json.dumps(figures))
PY
