// Soak: the server under a steady mixed load for a bounded time, its resident memory, open files
// and threads sampled all along and judged flat after warm-up (soak/process-samples.js says how),
// and every chat checked against the load test's invariants (support/load-chats.js) as it ends.
//
// The load, all at once and without pause until the time is up:
// - chat workers, each starting chat after chat: a whole turn, a reload mid-reply and its
//   resume, a stop mid-reply, a last turn (the load test's cycle), then the chat's checks;
// - idle Trigger-wire readers of chats with nothing to read: each `GET .../out` waits out a short
//   `Timeout-Seconds`, or hangs up halfway, and opens again;
// - bad requests, one after another: bad tokens, bad bodies, another chat's token, unknown chats
//   and paths; each must get a 4xx (which one is the routes' own tests' business).
//
// Run by scripts/soak.sh (local server with its default SQLite store, or the Lambda functions
// through scripts/lambda-e2e.sh); `bash scripts/worker-e2e.sh soak/` runs it against the Worker
// under `wrangler dev`, whose log must then hold no "Disallowed operation" (a stream touched
// after its request has gone). Environment:
//   CHATFN_SOAK_SECONDS         how long the load runs (75)
//   CHATFN_SOAK_CHATS           chat workers at once (16 local, 3 on Lambda)
//   CHATFN_SOAK_READERS         idle readers at once (16 local, 2 on Lambda)
//   CHATFN_SOAK_SAMPLES_FILE    where to write every sample, one JSON object a line

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { e2eSuite } from '../support/harness.js';
import { lambdaInstances } from '../support/lambda-instances.js';
import { checkChat, loadModelScript, runChat } from '../support/load-chats.js';
import { chatUrl, createSession, newChatId, request } from '../support/server.js';
import { dataRecords, parseSseEvents, recordsOf, sessionUrl } from '../support/trigger.js';
import { userMessage } from '../support/stream.js';
import { FIGURES, judgeFlat, sampleProcesses } from './process-samples.js';

const onLambda = Boolean(process.env.CHATFN_LAMBDA_URL);
const onWorker = process.env.CHATFN_WORKER === '1';
const SECONDS = Number(process.env.CHATFN_SOAK_SECONDS ?? 75);
const CHAT_WORKERS = Number(process.env.CHATFN_SOAK_CHATS ?? (onLambda ? 3 : onWorker ? 8 : 16));
const READERS = Number(process.env.CHATFN_SOAK_READERS ?? (onLambda ? 2 : onWorker ? 8 : 16));
// About ninety samples a run: one a second on a short run, one every 20 s on a long one.
const SAMPLE_MS = Math.min(Math.max(Math.round((SECONDS * 1000) / 90), 1000), 20_000);
// Bad requests are cheap: paced so that they stay a share of the load, not all of it.
const BAD_REQUEST_PAUSE_MS = onLambda ? 200 : 20;
const FAILURES_SHOWN = 5;

// The local server keeps its chats in its default store, a SQLite file in this folder.
const dataDir = onLambda ? undefined : mkdtempSync(path.join(tmpdir(), 'chatfn-soak-'));
after(() => {
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/**
 * The processes to watch: the local server, every instance of the Lambda functions, or the
 * workerd processes of `wrangler dev` (in wrangler's process group).
 */
function watchedProcesses(server) {
  if (onLambda) return ['session-start', 'token-refresh', 'agent-turn'].flatMap((fn) => lambdaInstances(fn));
  if (onWorker) {
    return execFileSync('ps', ['-eo', 'pid=,pgid=,comm='], { encoding: 'utf8' })
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter(([, pgid, command]) => Number(pgid) === server.pid && command === 'workerd')
      .map(([pid]) => Number(pid));
  }
  return [server.pid];
}

/** Keeps what went wrong: a count, and the first few messages. */
function failureLog() {
  const shown = [];
  let count = 0;
  return {
    add(what, error) {
      count += 1;
      if (shown.length < FAILURES_SHOWN) shown.push(`${what}: ${error?.message ?? error}`.slice(0, 2000));
    },
    get count() {
      return count;
    },
    describe: () => shown.join('\n---\n'),
  };
}

/** Chat after chat until `deadline`: the load test's cycle, then its checks. */
async function chatWorker(server, worker, deadline, totals, failures) {
  for (let n = 0; Date.now() < deadline; n++) {
    const chatId = newChatId(`soak-${worker}-${n}`);
    try {
      const token = await createSession(server, chatId);
      const seen = await runChat(server, chatId, token);
      totals.turns += seen.length;
      await checkChat(server, chatId, token, seen);
      totals.chats += 1;
    } catch (error) {
      failures.add(`chat ${chatId}`, error);
    }
  }
}

/**
 * An idle Trigger-wire reader until `deadline`: one chat with no turn, read again and again;
 * every other read hangs up before the server's `Timeout-Seconds` ends it.
 */
async function idleReader(server, reader, deadline, totals, failures) {
  const chatId = newChatId(`soak-idle-${reader}`);
  let token;
  try {
    token = await createSession(server, chatId);
  } catch (error) {
    failures.add(`idle reader ${reader}: its session`, error);
    return;
  }
  for (let n = 0; Date.now() < deadline; n++) {
    const hangUp = n % 2 === 1;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), hangUp ? 500 + Math.random() * 1500 : 30_000);
    try {
      const response = await fetch(sessionUrl(server, chatId, 'out'), {
        headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', 'timeout-seconds': '2' },
        signal: controller.signal,
      });
      assert.equal(response.status, 200, `GET .../out answered ${response.status}`);
      const text = await response.text().catch((error) => {
        if (controller.signal.aborted && hangUp) return '';
        throw error;
      });
      assert.deepEqual(dataRecords(recordsOf(parseSseEvents(text))), [], `an idle chat's reader got records: ${text.slice(0, 300)}`);
      totals.idleReads += 1;
    } catch (error) {
      if (!(hangUp && controller.signal.aborted)) failures.add(`idle reader ${reader}`, error);
      else totals.idleReads += 1;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Bad requests one after another until `deadline`, each of which must get a 4xx. */
async function badRequests(server, deadline, totals, failures) {
  const chatId = newChatId('soak-bad');
  const otherId = newChatId('soak-bad-other');
  let token;
  try {
    token = await createSession(server, chatId);
  } catch (error) {
    failures.add('bad requests: their session', error);
    return;
  }
  const goodBody = (id) => ({ id, trigger: 'submit-message', messages: [userMessage('hello')] });
  const probes = [
    ['a bad token', () => request(`${server.baseUrl}/api/chat`, { method: 'POST', token: 'not-a-token', body: goodBody(chatId) })],
    ['a bad body', () => request(`${server.baseUrl}/api/chat`, { method: 'POST', token, rawBody: '{"id": ' })],
    ['a bad token and a bad body', () => request(`${server.baseUrl}/api/chat`, { method: 'POST', token: 'x.y.z', rawBody: '[' })],
    ['another chat\'s token', () => request(`${server.baseUrl}/api/chat`, { method: 'POST', token, body: goodBody(otherId) })],
    ['an unknown chat\'s messages', () => request(chatUrl(server, otherId, 'messages'), { token })],
    ['a bad token on a reader', () => request(sessionUrl(server, chatId, 'out'), { token: 'not-a-token' })],
    ['a bad secret key', () => request(`${server.baseUrl}/api/v1/sessions`, { method: 'POST', token: 'sk_wrong', body: { externalId: otherId } })],
    ['an unknown path', () => request(`${server.baseUrl}/api/nothing-here/${otherId}`, { token })],
  ];
  for (let n = 0; Date.now() < deadline; n++) {
    const [what, probe] = probes[n % probes.length];
    try {
      const answer = await probe();
      assert.ok(answer.status >= 400 && answer.status < 500, `${what} answered ${answer.status}: ${answer.text.slice(0, 300)}`);
      totals.badRequests += 1;
    } catch (error) {
      failures.add(`bad request (${what})`, error);
    }
    await sleep(BAD_REQUEST_PAUSE_MS);
  }
}

function describeFigures(samples) {
  return Object.entries(FIGURES).map(([key, figure]) => {
    const verdict = judgeFlat(samples, key);
    const show = (value) => (value === undefined ? '?' : figure.show(value));
    return {
      key,
      verdict,
      line: `${figure.label.padEnd(11)} start ${show(verdict.start)}, after warm-up ${show(verdict.warmedUp)}, end ${show(verdict.end)}; ` +
        `mean of the second third ${show(verdict.secondThird)}, of the last ${show(verdict.lastThird)}: ${verdict.reason}`,
    };
  });
}

e2eSuite('soak', (ctx, e2e) => {
  e2e(`${SECONDS} s of steady mixed load: ${CHAT_WORKERS} chats at once, ${READERS} idle readers, bad requests`, async () => {
    ctx.mock.handle(loadModelScript);
    const pids = watchedProcesses(ctx.server);
    const logMark = ctx.server.mark?.();
    assert.ok(pids.length > 0, 'no server process to watch');
    const started = Date.now();
    const deadline = started + SECONDS * 1000;
    const totals = { chats: 0, turns: 0, idleReads: 0, badRequests: 0 };
    const failures = failureLog();
    const samples = [];
    const sampler = setInterval(() => {
      if (Date.now() > deadline) return;
      samples.push(sampleProcesses(pids, Date.now() - started));
      // The mock keeps every request it gets; a long run would grow this test's own memory.
      ctx.mock.requests.length = 0;
      if (samples.length % Math.max(1, Math.round(60_000 / SAMPLE_MS)) === 0) {
        const last = samples.at(-1);
        console.log(`soak: ${(last.atMs / 1000).toFixed(0)} s, ${totals.turns} turns, RSS ${(last.rssKiB / 1024).toFixed(1)} MiB, ` +
          `${last.fds} files, ${last.threads} threads, ${failures.count} failures`);
      }
    }, SAMPLE_MS);
    after(() => clearInterval(sampler));
    samples.push(sampleProcesses(pids, 0));

    await Promise.all([
      ...Array.from({ length: CHAT_WORKERS }, (_, i) => chatWorker(ctx.server, i, deadline, totals, failures)),
      ...Array.from({ length: READERS }, (_, i) => idleReader(ctx.server, i, deadline, totals, failures)),
      badRequests(ctx.server, deadline, totals, failures),
    ]);
    clearInterval(sampler);
    const ran = (Date.now() - started) / 1000;

    if (process.env.CHATFN_SOAK_SAMPLES_FILE) {
      writeFileSync(process.env.CHATFN_SOAK_SAMPLES_FILE, samples.map((s) => JSON.stringify(s)).join('\n') + '\n');
    }
    const figures = describeFigures(samples);
    console.log(`soak: ${onLambda ? `${pids.length} Lambda instances` : onWorker ? `wrangler dev (${pids.length} workerd processes)` : 'the local server'}, ${ran.toFixed(0)} s: ` +
      `${totals.chats} chats checked, ${totals.turns} turns, ${totals.idleReads} idle reads, ${totals.badRequests} bad requests, ` +
      `${failures.count} failures; ${samples.length} samples, one every ${SAMPLE_MS / 1000} s`);
    for (const { line } of figures) console.log(`soak: ${line}`);

    assert.equal(failures.count, 0, `${failures.count} failures; the first ones:\n${failures.describe()}`);
    assert.ok(totals.chats > 0, 'no chat finished');
    assert.equal(Math.max(...samples.map((s) => s.missing)), 0, 'a watched process exited during the soak');
    if (onWorker) {
      const refused = ctx.server.wholeLog(logMark).split('\n').filter((line) => /Disallowed operation/.test(line));
      assert.deepEqual(refused.slice(0, FAILURES_SHOWN), [], `wrangler dev refused ${refused.length} operations`);
    }
    for (const { key, verdict } of figures) {
      assert.ok(verdict.flat, `${FIGURES[key].label} not flat after warm-up: ${verdict.reason}`);
    }
  }, { timeout: SECONDS * 1000 + 300_000 });
}, { dataDir });
