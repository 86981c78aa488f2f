#!/usr/bin/env bash
# The AWS tools chatfn's Lambda tests and deploys use, in one Python venv outside the repository:
# cargo-lambda (runs the functions locally, builds them for SAM), the SAM CLI and cfn-lint; and
# opentelemetry-proto, with which the end-to-end test's OTLP receiver decodes http/protobuf
# (scripts/otlp-receiver.py).
# Idempotent, and quick once installed. Prints the venv's bin folder on its last line:
#
#   PATH="$(bash scripts/lambda-tools.sh | tail -n1):$PATH"
#
# CHATFN_TOOLS_DIR moves the cache (default: $XDG_CACHE_HOME/chatfn or ~/.cache/chatfn).
set -euo pipefail

CARGO_LAMBDA_VERSION=1.9.2
SAM_VERSION=1.170.0
# Newer cfn-lint no longer expands SAM transforms and misses bad values in them.
CFN_LINT_VERSION=1.53.3
OTLP_PROTO_VERSION=1.45.2

cache="${CHATFN_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatfn}"
venv="$cache/venv"
wanted="cargo-lambda==$CARGO_LAMBDA_VERSION aws-sam-cli==$SAM_VERSION cfn-lint==$CFN_LINT_VERSION opentelemetry-proto==$OTLP_PROTO_VERSION"
stamp="$venv/.chatfn-tools"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" && -x "$venv/bin/sam" && -x "$venv/bin/cargo-lambda" ]]; then
  echo "AWS tools are up to date in $venv" >&2
else
  echo "installing $wanted into $venv" >&2
  mkdir -p "$cache"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086 # the list is meant to split into arguments
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $wanted >&2
  echo "$wanted" > "$stamp"
fi
echo "$venv/bin"
