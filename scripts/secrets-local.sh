#!/usr/bin/env bash
# A local stand-in for AWS Secrets Manager (moto's server) for the Lambda functions' end-to-end
# run, which reads the keys from it at start-up as the deployed functions read them from AWS.
#
#   scripts/secrets-local.sh install              install moto's server into a venv (idempotent)
#   scripts/secrets-local.sh start [FILE]         install, start on a free port of 127.0.0.1, wait
#                                                 until it answers, print (or write to FILE) the lines
#                                                   export AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:PORT
#                                                   export CHATFN_SECRETS_LOCAL_PID=PID
#   scripts/secrets-local.sh put NAME             store stdin as the secret NAME (created, or a new
#                                                 version), at the endpoint in the environment
#   scripts/secrets-local.sh stop [FILE|PID]      stop the one started (PID from FILE, or the PID given)
#
# Typical use:  eval "$(bash scripts/secrets-local.sh start)"; printf %s "$KEY" | bash
# scripts/secrets-local.sh put chatfn/secret-key; ...; kill "$CHATFN_SECRETS_LOCAL_PID"
#
# The venv lives outside the repo, beside the other tools: $CHATFN_TOOLS_DIR, default
# $XDG_CACHE_HOME/chatfn (~/.cache/chatfn), folder moto-venv. Secrets live in the server's memory:
# nothing survives a stop. Messages go to stderr so stdout can be eval'd.
set -euo pipefail

MOTO_VERSION=5.2.6
cache="${CHATFN_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatfn}"
venv="$cache/moto-venv"
wanted="moto[server]==$MOTO_VERSION"
stamp="$venv/.chatfn-moto"
log() { printf 'secrets-local: %s\n' "$*" >&2; }
# shellcheck source=stand-in.sh
source "$(dirname "${BASH_SOURCE[0]}")/stand-in.sh"

install() {
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" && -x "$venv/bin/moto_server" ]]; then
    return
  fi
  log "installing $wanted into $venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wanted" >&2
  echo "$wanted" > "$stamp"
}

start() {
  local out="${1:-}" port pid logfile
  install
  port="$(free_port)"
  logfile="$cache/moto-$port.log"
  find "$cache" -maxdepth 1 -name 'moto-*.log' -mtime +1 -delete 2>/dev/null || true
  # setsid: its own process group, so it outlives this script and a `kill PID` stops just it.
  setsid "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$logfile" 2>&1 </dev/null &
  pid=$!
  await_answer "$pid" "http://127.0.0.1:$port/moto-api/" "$logfile"
  hand_over "$out" "export AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:$port
export CHATFN_SECRETS_LOCAL_PID=$pid"
}

# The value comes on stdin, never on a command line (which `ps` shows).
put() {
  local name="${1:?put needs the secret name}"
  [[ -n "${AWS_ENDPOINT_URL_SECRETS_MANAGER:-}" ]] || { log "put: AWS_ENDPOINT_URL_SECRETS_MANAGER is not set"; exit 1; }
  install
  AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}" \
    AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}" "$venv/bin/python" - "$name" <<'PY'
import os
import sys

import boto3

name = sys.argv[1]
# Python reads this program on stdin: the value comes on fd 3.
value = os.fdopen(3).read()
client = boto3.client("secretsmanager", endpoint_url=os.environ["AWS_ENDPOINT_URL_SECRETS_MANAGER"])
try:
    client.create_secret(Name=name, SecretString=value)
except client.exceptions.ResourceExistsException:
    client.put_secret_value(SecretId=name, SecretString=value)
PY
}

stop() {
  stop_stand_in CHATFN_SECRETS_LOCAL_PID "${1:-${CHATFN_SECRETS_LOCAL_PID:-}}"
}

case "${1:-start}" in
  install) install ;;
  start) start "${2:-}" ;;
  put) put "${2:-}" 3<&0 ;;
  stop) stop "${2:-}" ;;
  *) log "usage: $0 install | start [FILE] | put NAME | stop [FILE|PID]"; exit 2 ;;
esac
