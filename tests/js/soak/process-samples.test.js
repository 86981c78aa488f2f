// The soak's judgement of "flat after warm-up" (process-samples.js), on made-up series.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { judgeFlat } from './process-samples.js';

const series = (values) => values.map((threads, i) => ({ atMs: i * 1000, threads }));
const bounds = { relative: 0.1, absolute: 2 };

test('a warm-up then a level series is flat, noise and all', () => {
  const values = [3, 8, 12, 15, 15, 16, ...Array.from({ length: 24 }, (_, i) => 40 + (i % 3) - 1)];
  const verdict = judgeFlat(series(values), 'threads', bounds);
  assert.ok(verdict.flat, verdict.reason);
  assert.equal(verdict.start, 3);
});

test('a rise in the last third beyond the allowance is not flat', () => {
  const values = [...Array.from({ length: 20 }, () => 40), ...Array.from({ length: 10 }, () => 50)];
  const verdict = judgeFlat(series(values), 'threads', bounds);
  assert.equal(verdict.flat, false);
  assert.match(verdict.reason, /last third/);
});

test('a steady creep within the allowance is not flat either', () => {
  // 40 → 43.5 after warm-up: within 10 %, but higher in every sixth.
  const values = Array.from({ length: 36 }, (_, i) => 40 + Math.max(0, i - 12) * 0.15);
  const verdict = judgeFlat(series(values), 'threads', bounds);
  assert.equal(verdict.flat, false);
  assert.match(verdict.reason, /every sixth/);
});

test('too few samples are not judged flat', () => {
  assert.equal(judgeFlat(series([1, 1, 1, 1, 1]), 'threads', bounds).flat, false);
});
