// One chat's life under load, and the invariants every chat must end with, for the load test
// (load/) and the soak (soak/). The invariants are those of the fault suite
// (shared/tests/faults.rs), checked from outside through the routes:
//
// - every message sent got exactly one turn (one turn-complete naming it in the chat's log) and
//   one reply in the history, in order, with no message stored twice;
// - what the client saw live equals the turn's chunks in the log, chunk for chunk (for the
//   resumed turn: what it saw before hanging up is the start of the replay, and the replay is the
//   log);
// - no chat stays locked: every chat is settled at the end (no turn running or waiting);
// - no error chunk anywhere.

import assert from 'node:assert/strict';
import { chatUrl, getMessages, request } from './server.js';
import { readWholeLog } from './trigger.js';
import { userMessage } from './stream.js';

const WORDS = 12;
const LONG_WORDS = 80;

/** The mock model's script: short replies, long ones (streamed slowly) to messages saying "long". */
export function loadModelScript(req) {
  const last = req.messages.filter((m) => m.role === 'user').at(-1);
  const text = typeof last?.content === 'string' ? last.content : JSON.stringify(last?.content ?? '');
  const words = text.includes('long') ? LONG_WORDS : WORDS;
  return { text: Array.from({ length: words }, (_, i) => `w${i} `), delayMs: text.includes('long') ? 15 : 2 };
}
// What one request may wait. Generous: on Lambda under `cargo lambda watch` a burst queues
// requests behind busy instances for tens of seconds, and this test checks what the chats end up
// as, not how fast (the benchmark measures that).
export const REQUEST_TIMEOUT_MS = 120_000;

/** Runs `fn` over `items` with at most `limit` at a time. */
export async function pool(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index], index);
    }
  });
  await Promise.all(workers);
  return results;
}

/**
 * Reads a UI message stream (SSE). Returns the parsed chunks in order; with `hangUpAfter`, stops
 * reading after that many chunks and aborts the request; `onChunk` sees each chunk as it comes.
 */
async function readStream(response, { hangUpAfter, abort, onChunk } = {}) {
  const chunks = [];
  const decoder = new TextDecoder();
  const reader = response.body.getReader();
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    let boundary;
    while ((boundary = text.indexOf('\n\n')) >= 0) {
      const event = text.slice(0, boundary);
      text = text.slice(boundary + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data: ')) continue;
        const data = line.slice(6);
        if (data === '[DONE]') continue;
        const chunk = JSON.parse(data);
        chunks.push(chunk);
        await onChunk?.(chunk, chunks);
      }
      if (hangUpAfter !== undefined && chunks.length >= hangUpAfter) {
        abort();
        await reader.cancel().catch(() => {});
        return chunks;
      }
    }
  }
  return chunks;
}

/** Requests in flight, for the report of what hangs: label → start time. */
const inFlight = new Map();

async function tracked(label, promise) {
  inFlight.set(label, Date.now());
  try {
    return await promise;
  } finally {
    inFlight.delete(label);
  }
}

export function reportSlowRequests() {
  const now = Date.now();
  const slow = [...inFlight].filter(([, at]) => now - at > 20_000);
  if (slow.length > 0) {
    console.log(`load: ${slow.length} requests in flight for over 20 s: ${slow.slice(0, 10).map(([label, at]) => `${label} (${((now - at) / 1000).toFixed(0)} s)`).join(', ')}`);
  }
}

async function send(server, chatId, token, text, options = {}) {
  return tracked(`${chatId} send "${text}"`, sendUntracked(server, chatId, token, text, options));
}

async function sendUntracked(server, chatId, token, text, options = {}) {
  const controller = new AbortController();
  const response = await fetch(`${server.baseUrl}/api/chat`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ id: chatId, trigger: 'submit-message', messages: [userMessage(text)] }),
    signal: controller.signal,
  });
  assert.equal(response.status, 200, `${chatId}: "${text}" answered ${response.status}: ${await response.clone().text()}`);
  return readStream(response, { ...options, abort: () => controller.abort() });
}

/**
 * One chat's turns: `rounds` of a whole turn, a reload-resume and a stop, then a last turn.
 * Returns what its client saw of each turn, for `checkChat`.
 */
export async function runChat(server, chatId, token, { rounds = 1 } = {}) {
  const seen = [];
  for (let round = 0; round < rounds; round++) {
    // A whole turn.
    seen.push({ chunks: await send(server, chatId, token, `r${round} whole`), whole: true });
    // A reload mid-turn: hang up, then resume from the start.
    const before = await send(server, chatId, token, `r${round} long reload`, { hangUpAfter: 6 });
    const resumed = await tracked(`${chatId} resume`, fetch(chatUrl(server, chatId, 'stream'), {
      headers: { authorization: `Bearer ${token}` },
    }));
    if (resumed.status === 200) {
      const replay = await readStream(resumed);
      assert.deepEqual(replay.slice(0, before.length), before, `${chatId}: the replay starts with what was seen live`);
      seen.push({ chunks: replay, whole: true });
    } else {
      assert.equal(resumed.status, 204, `${chatId}: resume`);
      seen.push({ chunks: before, whole: false });
    }
    // A stop mid-turn.
    let stopped = null;
    const stopTurn = await send(server, chatId, token, `r${round} long stop`, {
      onChunk: (chunk, chunks) => {
        if (!stopped && chunk.type === 'text-delta' && chunks.length >= 8) {
          stopped = tracked(`${chatId} stop`, request(chatUrl(server, chatId, 'stop'), { method: 'POST', token, body: {}, timeout: REQUEST_TIMEOUT_MS }));
        }
      },
    });
    assert.ok(stopped, `${chatId}: the stop was sent`);
    const stopAnswer = await stopped;
    assert.ok(stopAnswer.status < 300, `${chatId}: stop answered ${stopAnswer.status}: ${stopAnswer.text}`);
    seen.push({ chunks: stopTurn, whole: true, stopped: true });
  }
  // The last turn, after everything else.
  seen.push({ chunks: await send(server, chatId, token, 'last'), whole: true });
  return seen;
}

/** Cuts the chat's log into turns: `{ inputSeq, chunks }` per turn-complete. */
function turnsOf(records) {
  const turns = [];
  let chunks = [];
  for (const record of records) {
    if (record.control === 'turn-complete') {
      turns.push({ inputSeq: record.headerMap['session-in-event-id'], chunks });
      chunks = [];
    } else if (record.chunk !== undefined) {
      chunks.push(record.chunk);
    }
  }
  assert.deepEqual(chunks, [], 'no chunks after the last turn-complete');
  return turns;
}

/** Checks the chat's log and history against what its client saw (`runChat`'s answer). */
export async function checkChat(server, chatId, token, seen) {
  const records = await readWholeLog(server, chatId, token, { timeout: REQUEST_TIMEOUT_MS });
  const turns = turnsOf(records);
  assert.equal(turns.length, seen.length, `${chatId}: one turn per message sent`);
  const inputs = turns.map((turn) => turn.inputSeq);
  assert.ok(inputs.every((seq) => seq !== undefined), `${chatId}: every turn names its message`);
  assert.equal(new Set(inputs).size, inputs.length, `${chatId}: no message answered twice`);
  turns.forEach((turn, index) => {
    const live = seen[index];
    if (live.whole) {
      assert.deepEqual(turn.chunks, live.chunks, `${chatId}: turn ${index} as seen live and as logged`);
    } else {
      assert.deepEqual(turn.chunks.slice(0, live.chunks.length), live.chunks, `${chatId}: turn ${index}'s start`);
    }
    const errors = turn.chunks.filter((chunk) => chunk.type === 'error');
    assert.deepEqual(errors, [], `${chatId}: turn ${index} has no error chunk`);
  });
  const messages = await getMessages(server, chatId, token, { timeout: REQUEST_TIMEOUT_MS });
  assert.equal(messages.length, seen.length * 2, `${chatId}: a reply per message in the history`);
  messages.forEach((message, index) => {
    assert.equal(message.role, index % 2 === 0 ? 'user' : 'assistant', `${chatId}: message ${index}`);
  });
  assert.equal(new Set(messages.map((m) => m.id)).size, messages.length, `${chatId}: no message stored twice`);
}
