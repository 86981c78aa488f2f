// The store conformance suite (shared/src/store/conformance.rs) against the Worker's Durable
// Object storage, inside workerd: every case in a fresh object of its own. The suite's routes
// exist only in the test build (scripts/worker-build.sh --test).

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { request } from '../support/server.js';
import { startWorker } from '../support/worker.js';

const PREFIX = '/__chatfn/store-conformance';

describe('the store conformance suite on Durable Object storage', () => {
  let worker;
  let cases = [];

  before(async () => {
    worker = await startWorker();
    const list = await request(`${worker.baseUrl}${PREFIX}`);
    assert.equal(list.status, 200, `the conformance routes are missing (not a --test build?): ${list.text}`);
    cases = list.json.cases;
  }, { timeout: 120_000 });

  after(async () => {
    await worker?.stop();
  });

  test('every case passes', { timeout: 120_000 }, async () => {
    assert.ok(cases.length >= 20, `the suite lists its cases: ${JSON.stringify(cases)}`);
    const failed = [];
    for (const name of cases) {
      const mark = worker.mark();
      const result = await request(`${worker.baseUrl}${PREFIX}/${name}/${randomUUID()}`, { method: 'POST', timeout: 30_000 });
      if (result.status !== 200 || result.json?.ok !== true) {
        failed.push(`${name}: ${result.status} ${result.text.slice(0, 300)}\n${worker.logs(mark)}`);
      }
    }
    assert.deepEqual(failed, [], `cases failed on Durable Object storage:\n${failed.join('\n')}`);
  });
});
