// The Worker's start, measured under `wrangler dev` (workerd, locally), beside the Lambda cold
// start of scripts/lambda-cold-start.sh. Run through scripts/worker-cold-start.sh, which builds
// the release wasm first.
//
// Each round starts a fresh wrangler dev (a fresh workerd process, so a fresh isolate: the module
// and its wasm are compiled and instantiated again) and times, from the spawn:
// - ready: wrangler dev printing "Ready on …" (wrangler's own start, workerd's, the script loaded);
// - first session start: from ready to the first byte of `POST /api/v1/sessions` with the
//   secret key, the first request the isolate serves (it also creates the chat's Durable Object);
// - warm session start: the same for another chat once the isolate is warm (a new Durable Object
//   again, so the difference between the two is the isolate's first request, not the object's).
// On Cloudflare the isolate is started while the TLS handshake runs; wrangler's own start has no
// counterpart there, which is why it is reported apart.
//
//   node scripts/worker-cold-start.mjs [ROUNDS]   (prints one JSON object)

import { performance } from 'node:perf_hooks';
import { sessionBody } from '../tests/js/support/server.js';
import { startWorker } from '../tests/js/support/worker.js';

const rounds = Number(process.argv[2] ?? 5);

/** Milliseconds from the request to the first byte of a session start for `chatId`. */
async function sessionStart(baseUrl, secretKey, chatId) {
  const started = performance.now();
  const response = await fetch(`${baseUrl}/api/v1/sessions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${secretKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(sessionBody(chatId)),
  });
  const reader = response.body.getReader();
  await reader.read();
  const firstByte = performance.now() - started;
  await reader.cancel();
  if (response.status !== 200 && response.status !== 201) {
    throw new Error(`session start answered ${response.status}`);
  }
  return firstByte;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const samples = { ready: [], first: [], warm: [] };
for (let round = 0; round < rounds; round += 1) {
  const spawned = performance.now();
  const worker = await startWorker({});
  samples.ready.push(performance.now() - spawned);
  try {
    samples.first.push(await sessionStart(worker.baseUrl, worker.secretKey, `cold-${round}`));
    samples.warm.push(await sessionStart(worker.baseUrl, worker.secretKey, `warm-${round}`));
  } finally {
    await worker.stop();
  }
}
const round1 = (ms) => Math.round(ms * 10) / 10;
console.log(
  JSON.stringify({
    rounds,
    ready_ms: round1(median(samples.ready)),
    first_session_start_ms: round1(median(samples.first)),
    warm_session_start_ms: round1(median(samples.warm)),
    samples: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, v.map(round1)])),
  }),
);
