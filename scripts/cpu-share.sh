#!/usr/bin/env bash
# Runs a command on a share of one CPU, as AWS Lambda gives a function a share proportional to
# its memory (one vCPU at 1,769 MB): for estimating a turn's latency at a MemorySize
# (docs/profiling.md, "Lambda memory size"). Needs root and the cgroup cpu controller (v1 or v2).
#
#   CHATFN_CPU_SHARE=0.145 CHATFN_CPU_SHARE_BIN=target/release/chatfn-local \
#     target/release/bench --chatfn-only --chatfn scripts/cpu-share.sh --levels 1
#
# The bench passes its arguments on. The command replaces this script in a cgroup of its own
# (the bench stops its server with SIGKILL, which no wrapper outlives); groups left empty by
# earlier runs are removed here. The group is made under CHATFN_CPU_SHARE_PARENT when that names
# a cgroup folder (scripts/lambda-memory-size.sh makes one that outweighs the machine's other
# load, so that the quota, not a busy machine, is what limits the server), else at the root.
set -euo pipefail
share="${CHATFN_CPU_SHARE:?set CHATFN_CPU_SHARE, a fraction of one CPU (0.0724 for 128 MB)}"
binary="${CHATFN_CPU_SHARE_BIN:?set CHATFN_CPU_SHARE_BIN, the command to run}"
period="${CHATFN_CPU_PERIOD_US:-100000}"
quota="$(awk -v share="$share" -v period="$period" 'BEGIN { printf "%d", share * period }')"
name="chatfn-cpu-share-$$"
if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
  root="${CHATFN_CPU_SHARE_PARENT:-/sys/fs/cgroup}"
  group="$root/$name"
  mkdir "$group"
  echo "$quota $period" >"$group/cpu.max"
elif [[ -d /sys/fs/cgroup/cpu ]]; then
  root="${CHATFN_CPU_SHARE_PARENT:-/sys/fs/cgroup/cpu}"
  group="$root/$name"
  mkdir "$group"
  echo "$period" >"$group/cpu.cfs_period_us"
  echo "$quota" >"$group/cpu.cfs_quota_us"
else
  echo "cpu-share: no cgroup cpu controller here" >&2
  exit 1
fi
for stale in "$root"/chatfn-cpu-share-*; do
  [[ "$stale" != "$group" ]] && rmdir "$stale" 2>/dev/null || true
done
echo $$ >"$group/cgroup.procs"
exec "$binary" "$@"
