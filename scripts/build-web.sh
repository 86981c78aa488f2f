#!/usr/bin/env bash
# Builds the chat page (web/ → web/dist) when its sources changed since the last build. Installs
# its npm packages first (once; scripts/npm-install.sh skips them when they match the lockfile).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
web="$root/web"
bash "$root/scripts/npm-install.sh" "$web"

# The cache key: every source file of the page, its build config and its lockfile.
key="$(cd "$web" && find src index.html vite.config.js package.json package-lock.json -type f -print0 \
  | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
stamp="$web/dist/.chatfn-build-hash"
if [[ -f "$stamp" && -f "$web/dist/index.html" && "$(cat "$stamp")" == "$key" ]]; then
  echo "the chat page in web/dist is up to date"
  exit 0
fi
(cd "$web" && npm run build --silent)
echo "$key" > "$stamp"
