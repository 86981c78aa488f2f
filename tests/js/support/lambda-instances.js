// The processes of the Lambda functions under `cargo lambda watch --only-lambda-apis`:
// scripts/lambda-e2e.sh starts each instance as a child of its own and names itself in
// CHATFN_LAMBDA_INSTANCES_PARENT.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** The PIDs of the running instances of function `name`. */
export function lambdaInstances(name) {
  const parent = process.env.CHATFN_LAMBDA_INSTANCES_PARENT;
  assert.ok(parent, 'run this file with scripts/lambda-e2e.sh (CHATFN_LAMBDA_INSTANCES_PARENT)');
  const binary = new RegExp(`(^|/)${name}$`);
  return execFileSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([, ppid, command]) => ppid === parent && binary.test(command ?? ''))
    .map(([pid]) => Number(pid));
}

/** Of `pids`, the ones holding the local TCP socket bound to `port` (from /proc). */
export function pidsHoldingPort(pids, port) {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const sockets = new Set();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(table)) continue;
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields[1]?.endsWith(`:${hexPort}`)) sockets.add(`socket:[${fields[9]}]`);
    }
  }
  const holds = (pid) => {
    try {
      return readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          return sockets.has(readlinkSync(`/proc/${pid}/fd/${fd}`));
        } catch {
          return false; // closed meanwhile
        }
      });
    } catch {
      return false; // exited meanwhile
    }
  };
  return pids.filter(holds);
}
