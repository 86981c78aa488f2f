// The Trigger.dev chat wire, driven with the stock `@trigger.dev/sdk` (pinned to 4.8.3).
//
// The SDK is used unchanged and configured only with the server's base URL and secret key:
// `configure({ secretKey, baseURL })`, `chat.createStartSessionAction("chat")`,
// `auth.createPublicToken(...)` and `TriggerChatTransport` with `accessToken` / `startSession`
// callbacks, as a browser app and its server actions would be.
//
// Observation without changing the SDK: `tapFetch()` wraps `globalThis.fetch` (which the SDK
// calls at request time) to record every exchange: method, URL, request headers and body,
// status, response headers, and the response text. Event-stream bodies are recorded as the SDK
// reads them, so a tap holds exactly the bytes the SDK saw. Raw requests made by the tests use
// the fetch captured at import time and are never recorded.

import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { auth, configure, sessions } from '@trigger.dev/sdk';
import { chat } from '@trigger.dev/sdk/ai';
import { TriggerChatTransport } from '@trigger.dev/sdk/chat';
import { nowSeconds, sessionClaims, signHs256 } from './jwt.js';
import { request } from './server.js';
import { describeChunks } from './stream.js';

const nativeFetch = globalThis.fetch.bind(globalThis);

export const TASK = 'chat';

// ---------------------------------------------------------------------------------------------
// SDK setup

/**
 * Points the SDK at `server` (global configuration, once per test file) and returns the server
 * actions: `startSession({ chatId, clientData })` (the stock `chat.createStartSessionAction`) and
 * `mint(chatId, { read, write, expirationTime })` (the stock `auth.createPublicToken`).
 */
export function triggerServerActions(server) {
  configure({ secretKey: server.secretKey, baseURL: server.baseUrl });
  const startSession = chat.createStartSessionAction(TASK);
  const mint = (chatId, { read = true, write = true, expirationTime = '1h' } = {}) =>
    auth.createPublicToken({
      scopes: {
        ...(read ? { read: { sessions: chatId } } : {}),
        ...(write ? { write: { sessions: chatId } } : {}),
      },
      expirationTime,
    });
  return { startSession, mint, sessions };
}

/**
 * A `TriggerChatTransport` as a browser app builds it: `accessToken` mints with
 * `auth.createPublicToken`, `startSession` calls the start-session action. Returns
 * `{ transport, calls }`; `calls.accessToken` / `calls.startSession` list the chat ids each
 * callback was called with. `sessions` seeds saved per-chat state (a reload).
 */
export function makeTriggerTransport(server, actions, { sessions: saved, ...options } = {}) {
  const calls = { accessToken: [], startSession: [] };
  const transport = new TriggerChatTransport({
    task: TASK,
    baseURL: server.baseUrl,
    accessToken: async ({ chatId }) => {
      calls.accessToken.push(chatId);
      return actions.mint(chatId);
    },
    startSession: async ({ chatId, clientData }) => {
      calls.startSession.push(chatId);
      return actions.startSession({ chatId, clientData });
    },
    ...(saved ? { sessions: saved } : {}),
    ...options,
  });
  return { transport, calls };
}

/** An HS256 session token for `chatId`, signed with the server's key, that expired an hour ago. */
export function expiredToken(server, chatId) {
  return signHs256(sessionClaims(chatId, { iat: nowSeconds() - 7200, ttlSeconds: 3600 }), server.secretKey);
}

// ---------------------------------------------------------------------------------------------
// Observing the SDK's traffic

/**
 * Records every `fetch` the SDK makes until `restore()`. Each exchange:
 * `{ method, url (URL), path, requestHeaders (lower-case keys), requestBody, status,
 *    responseHeaders, text, json, startedAt, done (promise: the body was read to its end) }`.
 */
export function tapFetch() {
  const exchanges = [];
  const previous = globalThis.fetch;
  globalThis.fetch = async (input, init = {}) => {
    const isRequest = typeof Request !== 'undefined' && input instanceof Request;
    const url = new URL(typeof input === 'string' ? input : isRequest ? input.url : String(input));
    const requestHeaders = {};
    new Headers(init.headers ?? (isRequest ? input.headers : undefined)).forEach((value, key) => {
      requestHeaders[key] = value;
    });
    const exchange = {
      method: (init.method ?? (isRequest ? input.method : 'GET')).toUpperCase(),
      url,
      path: url.pathname,
      requestHeaders,
      requestBody: typeof init.body === 'string' ? init.body : undefined,
      status: undefined,
      responseHeaders: undefined,
      text: '',
      json: undefined,
      startedAt: performance.now(),
      error: undefined,
    };
    let finish;
    exchange.done = new Promise((resolve) => {
      finish = resolve;
    });
    exchanges.push(exchange);
    let response;
    try {
      response = await previous(input, init);
    } catch (error) {
      exchange.error = error;
      finish();
      throw error;
    }
    exchange.status = response.status;
    exchange.responseHeaders = Object.fromEntries(response.headers);
    const isStream = (response.headers.get('content-type') ?? '').includes('text/event-stream');
    if (!isStream || !response.body) {
      response.clone().text().then((text) => {
        exchange.text = text;
        try {
          exchange.json = text ? JSON.parse(text) : undefined;
        } catch {
          exchange.json = undefined;
        }
      }, () => {}).finally(finish);
      return response;
    }
    // Record the event stream as the SDK reads it.
    const decoder = new TextDecoder();
    const tapped = response.body.pipeThrough(new TransformStream({
      transform(chunk, controller) {
        exchange.text += decoder.decode(chunk, { stream: true });
        controller.enqueue(chunk);
      },
      flush() {
        exchange.text += decoder.decode();
        finish();
      },
    }));
    // An aborted read never flushes: settle `done` when the caller's signal fires.
    init.signal?.addEventListener('abort', () => finish(), { once: true });
    return new Response(tapped, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
  return {
    exchanges,
    /** Exchanges whose path ends with `suffix` (and method, when given). */
    to(suffix, method) {
      return exchanges.filter((e) => e.path.endsWith(suffix) && (!method || e.method === method));
    },
    /** How many exchanges were recorded so far (a mark for `since`). */
    mark: () => exchanges.length,
    since: (mark) => exchanges.slice(mark),
    restore() {
      globalThis.fetch = previous;
    },
  };
}

/** One-line summaries of exchanges, for assertion messages. */
export function describeExchanges(exchanges) {
  return exchanges
    .map((e) => `${e.method} ${e.path} → ${e.status ?? e.error?.message ?? 'pending'}`)
    .join('\n') || '(no requests)';
}

// ---------------------------------------------------------------------------------------------
// The v2 `.out` framing

/** Complete SSE events in `text` (`{ event, data, id }`); a trailing partial event is dropped. */
export function parseSseEvents(text) {
  const events = [];
  const blocks = text.replace(/\r\n/g, '\n').split('\n\n');
  blocks.pop(); // incomplete (or empty) tail
  for (const block of blocks) {
    const event = { event: 'message', data: '', id: undefined };
    const data = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event.event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id') event.id = value;
    }
    event.data = data.join('\n');
    events.push(event);
  }
  return events;
}

/**
 * The records of the `event: batch` events, each as
 * `{ seq, timestamp, body, headers, control, headerMap, chunk, recordId }`:
 * `control` is the `trigger-control` subtype (or undefined for data records), `chunk` and
 * `recordId` come from the data envelope `{"data": chunk, "id": recordId}`.
 */
export function recordsOf(events) {
  const records = [];
  for (const event of events) {
    if (event.event !== 'batch') continue;
    const batch = JSON.parse(event.data);
    assert.ok(Array.isArray(batch.records), `a batch without records: ${event.data}`);
    for (const record of batch.records) {
      const headerMap = Object.fromEntries(record.headers ?? []);
      const out = {
        seq: record.seq_num,
        timestamp: record.timestamp,
        body: record.body,
        headers: record.headers ?? [],
        headerMap,
        control: headerMap['trigger-control'],
        chunk: undefined,
        recordId: undefined,
      };
      if (record.body) {
        const envelope = JSON.parse(record.body);
        out.chunk = envelope.data;
        out.recordId = envelope.id;
      }
      records.push(out);
    }
  }
  return records;
}

export const dataRecords = (records) => records.filter((r) => r.control === undefined && r.chunk !== undefined);
export const turnCompletes = (records) => records.filter((r) => r.control === 'turn-complete');

/** `[seq, chunk]` pairs of the data records, for comparing two readers. */
export function dataSequence(records) {
  return dataRecords(records).map((r) => [r.seq, r.chunk]);
}

// ---------------------------------------------------------------------------------------------
// Raw requests (never recorded by a tap)

/** `fetch` returning `{ status, headers, text, json }`, never seen by a tap. */
export function rawFetch(url, options = {}) {
  return request(url, { ...options, fetchImpl: nativeFetch });
}

export const sessionUrl = (server, chatId, suffix) =>
  `${server.baseUrl}/realtime/v1/sessions/${encodeURIComponent(chatId)}/${suffix}`;

/** `POST .../in/append` with one ChatInputChunk (object, or a string body). */
export function appendRaw(server, chatId, token, input, { partId, headers = {} } = {}) {
  return rawFetch(sessionUrl(server, chatId, 'in/append'), {
    method: 'POST',
    token,
    rawBody: typeof input === 'string' ? input : JSON.stringify(input),
    headers: { 'x-trigger-source': 'sdk', ...(partId ? { 'x-part-id': partId } : {}), ...headers },
  });
}

/** The ChatInputChunk the transport sends for a new message. */
export function messageInput(chatId, message, extra = {}) {
  return { kind: 'message', payload: { message, chatId, trigger: 'submit-message', ...extra } };
}

/**
 * `GET .../out` read incrementally. Stops when `stopWhen(record, records)` holds (default: the
 * first turn-complete), when the body ends, or fails after `timeout`. A response marked
 * `X-Session-Settled: true` is read to its end. Returns
 * `{ status, headers, records, ended, text }` (`ended`: the server closed the body).
 */
export async function readOut(server, chatId, token, {
  lastEventId,
  peekSettled = false,
  stopWhen = (record) => record.control === 'turn-complete',
  onRecord,
  timeout = 15000,
  headers = {},
} = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error('timeout')), timeout);
  const requestHeaders = {
    accept: 'text/event-stream',
    'timeout-seconds': '120',
    ...(token ? { authorization: `Bearer ${token}` } : {}),
    ...(lastEventId !== undefined ? { 'last-event-id': String(lastEventId) } : {}),
    ...(peekSettled ? { 'x-peek-settled': '1' } : {}),
    ...headers,
  };
  let response;
  try {
    response = await nativeFetch(sessionUrl(server, chatId, 'out'), { headers: requestHeaders, signal: controller.signal });
  } catch (error) {
    clearTimeout(timer);
    throw error;
  }
  if (!response.ok) {
    clearTimeout(timer);
    const text = await response.text();
    return { status: response.status, headers: response.headers, records: [], ended: true, text };
  }
  // A settled answer is the finite backlog: read it all.
  const stop = response.headers.get('x-session-settled') === 'true' ? null : stopWhen;
  const decoder = new TextDecoder();
  const reader = response.body.getReader();
  let text = '';
  let consumed = 0;
  const records = [];
  let ended = false;
  let stopped = false;
  try {
    while (!stopped) {
      let next;
      try {
        next = await reader.read();
      } catch (error) {
        if (controller.signal.aborted) {
          throw new Error(`GET .../out for ${chatId}: no end within ${timeout} ms; records: ${describeRecords(records)}`);
        }
        throw error;
      }
      if (next.done) {
        ended = true;
        break;
      }
      text += decoder.decode(next.value, { stream: true });
      const boundary = text.lastIndexOf('\n\n');
      if (boundary < consumed) continue;
      const fresh = recordsOf(parseSseEvents(text.slice(consumed, boundary + 2)));
      consumed = boundary + 2;
      for (const record of fresh) {
        records.push(record);
        onRecord?.(record, records);
        if (stop?.(record, records)) {
          stopped = true;
          break;
        }
      }
    }
  } finally {
    clearTimeout(timer);
    if (!ended) await reader.cancel().catch(() => {});
  }
  return { status: response.status, headers: response.headers, records, ended, text };
}

export function describeRecords(records) {
  return records.map((r) => `${r.seq}:${r.control ? `[${r.control}]` : r.chunk?.type}`).join(' ') || '(none)';
}

/**
 * Every record of the chat's `.out` log: a settled peek read from the start, repeated until the
 * server says settled (no turn running or waiting) or `timeout` passes.
 */
export async function readWholeLog(server, chatId, token, { timeout = 10000 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    // Against an unsettled chat the read follows the running turn: stop at its boundary.
    const read = await readOut(server, chatId, token, { peekSettled: true, timeout });
    assert.equal(read.status, 200, `GET .../out: ${read.text}`);
    if (read.headers.get('x-session-settled') === 'true') return read.records;
    assert.ok(Date.now() < deadline, `chat ${chatId} not settled after ${timeout} ms; records: ${describeRecords(read.records)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The chunk types, for messages. */
export { describeChunks };
