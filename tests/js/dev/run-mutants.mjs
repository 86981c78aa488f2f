#!/usr/bin/env node
// Runs the suite against dev/fake-chatfn.mjs once per deliberate bug (FAKE_BUG) and checks that
// each bug makes at least one test fail. Checks the tests, not chatfn.

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bugs = [
  'buffer', // replies held back until the turn ends
  'no-history', // the model sees only the last exchange
  'cancel-on-disconnect', // a dropped POST cancels the turn
  'no-abort-chunk', // stop ends with finish instead of abort
  'bad-chunk', // an unknown chunk type on the wire
  'no-resume', // GET /stream always 204
  'resume-from-middle', // GET /stream does not replay from start
  'skip-sig', // token signatures not checked
  'no-scope-check', // a token for chat B opens chat A
  'no-persist-partial', // a stopped reply is dropped
  'drop-tool-result', // tool results never reach the model
  'never-idle', // GET /stream keeps answering after the turn
];

let escaped = 0;
for (const bug of bugs) {
  const run = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', 'test/'], {
    cwd: root,
    env: { ...process.env, CHATFN_LOCAL_BIN: path.join(root, 'dev', 'fake-chatfn.mjs'), FAKE_BUG: bug },
    encoding: 'utf8',
  });
  const failed = [...new Set((run.stdout.match(/^ {2}✖ .*$/gm) ?? []).map((l) => l.replace(/ \([\d.]+ms\)$/, '').trim()))];
  if (run.status === 0) escaped++;
  console.log(`${run.status === 0 ? 'ESCAPED' : 'caught '} ${bug}${failed.length ? `: ${failed.length} failing` : ''}`);
  for (const line of failed) console.log(`    ${line}`);
}
process.exit(escaped ? 1 : 0);
