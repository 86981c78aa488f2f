// A scriptable mock of the OpenAI chat-completions API (`POST /v1/chat/completions`), which also
// answers the Responses API (`POST /v1/responses`, for CHATFN_MODEL_PROVIDER=openai-responses)
// from the same scripts (support/responses-stream.js; `reasoning` there).
//
// Each test registers a handler with `mock.handle(fn)`. The handler gets the recorded request
// (`{ index, body, messages, tools, headers, ... }`) and returns a reply script:
//
//   {
//     text: 'Hello' | ['Hel', 'lo'],         // text deltas, in order
//     toolCalls: [{ id, name, args: '{"a":1}' | ['{"a"', ':1}'] }],  // argument fragments
//     finishReason: 'stop' | 'tool_calls' | 'length' | ...,   // default: tool_calls when
//                                            // toolCalls is non-empty, else stop
//     delayMs: 80,                           // pause before every content chunk but the first
//     firstDelayMs: 0,                       // pause before the first content chunk
//     usage: { prompt_tokens, completion_tokens },  // sent when the request asks for it
//     chunks: [...],                         // raw `choices[0]` entries or `{ delayMs }`;
//                                            // replaces text/toolCalls when given
//     status: 500, errorBody: {...},         // answer with an HTTP error instead
//   }
//
// Every request is recorded in `mock.requests` (in arrival order) with timestamps, and with
// `aborted: true` when the caller hung up before the reply was complete, and with the caller's
// port (`clientPort`). Handler exceptions become 500 answers and are kept in `mock.errors`.
//
// The mock listens on 127.0.0.1 and port 0, or on `MOCK_OPENAI_PORT` when set (used when the
// chatfn server runs outside the tests; see README.md).

import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { responsesEvents, toArray } from './responses-stream.js';

const DEFAULT_REPLY = { text: ['This is ', 'the mock ', 'model.'] };

/** The text of an OpenAI message `content` (string, array of parts, or null). */
export function contentText(content) {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part) => (typeof part === 'string' ? part : part?.type === 'text' ? part.text ?? '' : ''))
      .join('');
  }
  return '';
}

/** The last message with the given role in an OpenAI `messages` array. */
export function lastMessage(messages, role) {
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i]?.role === role) return messages[i];
  }
  return undefined;
}

/** Splits a string into `n` roughly equal, non-empty fragments. */
export function splitInto(text, n) {
  const size = Math.max(1, Math.ceil(text.length / n));
  const parts = [];
  for (let i = 0; i < text.length; i += size) parts.push(text.slice(i, i + size));
  return parts;
}

export async function startMockOpenAI({ port } = {}) {
  const fixedPort = port ?? (process.env.MOCK_OPENAI_PORT ? Number(process.env.MOCK_OPENAI_PORT) : 0);
  const requests = [];
  const errors = [];
  const waiters = new Set();
  let handler = null;
  let completionCounter = 0;
  const sockets = new Set();

  function notify() {
    for (const waiter of waiters) waiter();
  }

  const server = http.createServer((req, res) => {
    handleRequest(req, res).catch((error) => {
      errors.push(error);
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: String(error?.stack ?? error), type: 'mock_error' } }));
      } else {
        res.destroy();
      }
    });
  });
  server.on('connection', (socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  async function readBody(req) {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    return Buffer.concat(chunks).toString('utf8');
  }

  async function handleRequest(req, res) {
    const url = new URL(req.url, 'http://mock');
    const responsesApi = /\/responses$/.test(url.pathname);
    if (req.method !== 'POST' || !(responsesApi || /\/chat\/completions$/.test(url.pathname))) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `mock: no route ${req.method} ${url.pathname}` } }));
      return;
    }

    const raw = await readBody(req);
    let body;
    try {
      body = JSON.parse(raw);
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'mock: request body is not JSON' } }));
      return;
    }

    const record = {
      index: requests.length,
      method: req.method,
      path: url.pathname,
      headers: req.headers,
      // The caller's side of the connection: tells which process made the call.
      clientPort: req.socket.remotePort,
      body,
      messages: Array.isArray(body.messages) ? body.messages : [],
      // The Responses API's conversation (its items), when it was called.
      input: Array.isArray(body.input) ? body.input : [],
      tools: Array.isArray(body.tools) ? body.tools : [],
      toolNames: (Array.isArray(body.tools) ? body.tools : []).map((t) => t?.function?.name ?? t?.name),
      receivedAt: performance.now(),
      firstChunkAt: undefined,
      finishedAt: undefined,
      completed: false,
      aborted: false,
      script: undefined,
    };
    requests.push(record);
    notify();

    let closed = false;
    res.on('close', () => {
      if (!record.completed) {
        closed = true;
        record.aborted = true;
        record.finishedAt = performance.now();
        notify();
      }
    });

    const script = (handler ? await handler(record) : undefined) ?? DEFAULT_REPLY;
    record.script = script;

    if (script.status && script.status >= 400) {
      res.writeHead(script.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(script.errorBody ?? { error: { message: 'mock error', type: 'server_error' } }));
      record.completed = true;
      record.finishedAt = performance.now();
      notify();
      return;
    }

    if (responsesApi) {
      await streamResponse(res, record, script, body, () => closed);
      notify();
      return;
    }

    const id = `chatcmpl-mock-${++completionCounter}`;
    const created = Math.floor(Date.now() / 1000);
    const model = body.model ?? 'mock-model';
    const base = { id, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_mock' };
    const steps = buildSteps(script);
    const usage = script.usage ?? defaultUsage(body, script);

    if (body.stream === false || body.stream === undefined) {
      // Non-streaming fallback: fold the script into one completion.
      const message = foldSteps(steps);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message, finish_reason: finishReasonOf(script) }],
        usage,
      }));
      record.completed = true;
      record.finishedAt = performance.now();
      notify();
      return;
    }

    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    res.flushHeaders();

    const send = (payload) => {
      if (closed || res.destroyed) return false;
      res.write(`data: ${typeof payload === 'string' ? payload : JSON.stringify(payload)}\n\n`);
      return true;
    };

    // The role chunk, as OpenAI sends it.
    send({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }] });

    let first = true;
    for (const step of steps) {
      if (closed) return;
      if (step.delayMs !== undefined) {
        await sleep(step.delayMs);
        continue;
      }
      const pause = first ? script.firstDelayMs ?? 0 : script.delayMs ?? 0;
      if (pause > 0) await sleep(pause);
      if (closed) return;
      if (first) record.firstChunkAt = performance.now();
      first = false;
      send({ ...base, choices: [{ index: 0, logprobs: null, finish_reason: null, ...step.choice }] });
    }
    if (closed) return;

    send({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: finishReasonOf(script) }] });
    if (body.stream_options?.include_usage || script.alwaysSendUsage) {
      send({ ...base, choices: [], usage });
    }
    send('[DONE]');
    record.completed = true;
    record.finishedAt = performance.now();
    res.end();
    notify();
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: fixedPort, host: '127.0.0.1', backlog: 4096 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const actualPort = server.address().port;

  return {
    port: actualPort,
    /** The base URL to give chatfn as `CHATFN_MODEL_BASE_URL`. */
    baseUrl: `http://127.0.0.1:${actualPort}/v1`,
    requests,
    errors,

    /** Sets the handler mapping a recorded request to a reply script (or `undefined` → default). */
    handle(fn) {
      handler = fn;
    },

    /** Forgets recorded requests and the handler (between tests). */
    reset() {
      handler = null;
      requests.length = 0;
      errors.length = 0;
    },

    /** Resolves once at least `n` requests arrived (and `predicate(requests)` holds, if given). */
    async waitForRequests(n, { timeout = 15000, predicate } = {}) {
      const ok = () => requests.length >= n && (!predicate || predicate(requests));
      if (ok()) return requests.slice();
      return new Promise((resolve, reject) => {
        const waiter = () => {
          if (ok()) {
            clearTimeout(timer);
            waiters.delete(waiter);
            resolve(requests.slice());
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`mock-openai: expected ${n} request(s) within ${timeout} ms, got ${requests.length}`));
        }, timeout);
        waiters.add(waiter);
      });
    },

    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Streams `script` as the Responses API does: each event's type on its `event:` line. */
async function streamResponse(res, record, script, body, closed) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  res.flushHeaders();
  const events = responsesEvents(script, { id: `resp_mock_${record.index}`, model: body.model ?? 'mock-model' });
  let first = true;
  for (const event of events) {
    const content = event.type.endsWith('.delta');
    if (content) {
      const pause = first ? script.firstDelayMs ?? 0 : script.delayMs ?? 0;
      if (pause > 0) await sleep(pause);
      if (first) record.firstChunkAt = performance.now();
      first = false;
    }
    if (closed() || res.destroyed) return;
    res.write(`event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
  }
  record.completed = true;
  record.finishedAt = performance.now();
  res.end();
}

function finishReasonOf(script) {
  if (script.finishReason) return script.finishReason;
  return script.toolCalls?.length ? 'tool_calls' : 'stop';
}

/** Turns a script into `choices[0]` entries (`{ choice }`) and pauses (`{ delayMs }`). */
function buildSteps(script) {
  if (script.chunks) {
    return script.chunks.map((chunk) => (chunk.delayMs !== undefined && Object.keys(chunk).length === 1
      ? { delayMs: chunk.delayMs }
      : { choice: chunk }));
  }
  const steps = [];
  for (const delta of toArray(script.text)) {
    steps.push({ choice: { delta: { content: delta } } });
  }
  toArray(script.toolCalls).forEach((call, index) => {
    const fragments = toArray(call.args ?? '{}');
    steps.push({
      choice: {
        delta: {
          tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }],
        },
      },
    });
    for (const fragment of fragments) {
      steps.push({ choice: { delta: { tool_calls: [{ index, function: { arguments: fragment } }] } } });
    }
  });
  return steps;
}

function foldSteps(steps) {
  const message = { role: 'assistant', content: null };
  const calls = [];
  for (const step of steps) {
    const delta = step.choice?.delta;
    if (!delta) continue;
    if (typeof delta.content === 'string') message.content = (message.content ?? '') + delta.content;
    for (const tc of delta.tool_calls ?? []) {
      const call = (calls[tc.index] ??= { id: tc.id, type: 'function', function: { name: '', arguments: '' } });
      if (tc.id) call.id = tc.id;
      if (tc.function?.name) call.function.name = tc.function.name;
      if (tc.function?.arguments) call.function.arguments += tc.function.arguments;
    }
  }
  if (calls.length) message.tool_calls = calls;
  return message;
}

function defaultUsage(body, script) {
  const promptChars = JSON.stringify(body.messages ?? []).length;
  const completionChars = toArray(script.text).join('').length
    + toArray(script.toolCalls).map((c) => toArray(c.args).join('')).join('').length;
  const prompt_tokens = Math.max(1, Math.ceil(promptChars / 4));
  const completion_tokens = Math.max(1, Math.ceil(completionChars / 4));
  return { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens };
}
