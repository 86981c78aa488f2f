#!/usr/bin/env bash
# Runs chatfn on localhost with its chat page: builds the page when its sources changed (npm
# packages installed once), then starts the local server. Arguments go to the server, e.g.
#   bash scripts/run.sh --port 9000 --memory
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/build-web.sh
exec cargo run -p local -- "$@"
