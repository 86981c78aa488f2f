# Sourced by the scripts that run a local stand-in for an AWS service (scripts/dynamodb-local.sh,
# scripts/secrets-local.sh): a free port, the wait until the service answers, the hand-over of
# its address and PID, and the stop. The sourcing script defines `log` (its messages go to
# stderr, so that its stdout can be eval'd).

# shellcheck source=free-port.sh
source "$(dirname "${BASH_SOURCE[0]}")/free-port.sh"

# await_answer PID URL LOGFILE: waits until URL gives any HTTP answer; exits with the log shown
# if the process PID dies first, or after 60 s.
await_answer() {
  local pid="$1" url="$2" logfile="$3" started=$SECONDS
  until curl -s -o /dev/null --max-time 2 "$url"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "it exited at start; its log:"
      cat "$logfile" >&2
      exit 1
    fi
    if (( SECONDS - started > 60 )); then
      log "no answer at $url after 60 s"
      kill "$pid" 2>/dev/null || true
      exit 1
    fi
    sleep 0.2
  done
  log "listening at $url (pid $pid, up in $((SECONDS - started)) s)"
}

# hand_over OUT LINES: the `export` lines to the file OUT, or to stdout when OUT is empty.
hand_over() {
  if [[ -n "$1" ]]; then
    printf '%s\n' "$2" > "$1"
  else
    printf '%s\n' "$2"
  fi
}

# stop_stand_in VARIABLE WHAT: stops the stand-in whose PID is WHAT, or is in the env file WHAT
# as `export VARIABLE=PID`.
stop_stand_in() {
  local variable="$1" what="$2" pid
  if [[ -f "$what" ]]; then
    pid="$(sed -n "s/^export $variable=//p" "$what")"
  else
    pid="$what"
  fi
  [[ "$pid" =~ ^[0-9]+$ ]] || { log "stop: give the env file or the PID"; exit 1; }
  kill "$pid" 2>/dev/null || true
}
