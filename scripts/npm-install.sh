#!/usr/bin/env bash
# `npm ci` in a folder, skipped when node_modules already matches its package-lock.json.
set -euo pipefail
dir="$1"
stamp="$dir/node_modules/.chatfn-lock-hash"
hash="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
  echo "npm packages in $dir are up to date"
  exit 0
fi
(cd "$dir" && npm ci --no-audit --no-fund --prefer-offline)
echo "$hash" > "$stamp"
