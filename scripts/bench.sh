#!/usr/bin/env bash
# chatfn against the Node AI SDK doing the same job, on one machine with one mock model
# (bench/; the method is in docs/benchmarks.md).
#
#   bash scripts/bench.sh           # the full run (a few minutes); rewrites docs/benchmarks.md
#   bash scripts/bench.sh --quick   # a few seconds with debug builds: checks the command works (CI)
#
# Other arguments go to the bench binary (`--levels 1,100,1000`, `--tokens 500`, …).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/npm-install.sh bench/baseline
if [[ "${1:-}" == "--quick" ]]; then
  cargo build -p local -p bench
  exec target/debug/bench --chatfn target/debug/chatfn-local "$@"
fi
cargo build --release -p local -p bench
exec target/release/bench --write-docs "$@"
