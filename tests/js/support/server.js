// Starting and stopping chatfn-local, minting sessions and tokens, and building the client transport.
//
// Environment:
//   CHATFN_LOCAL_BIN   the binary (default: <repo>/target/debug/chatfn-local)
//   CHATFN_BASE_URL    use an already running server instead of spawning one; it must share
//                      CHATFN_SECRET_KEY with the tests and use the mock model on MOCK_OPENAI_PORT
//   CHATFN_SECRET_KEY  the secret key (random per run when the tests spawn the server)
//   CHATFN_TEST_LOG=1  echo the server's stdout/stderr while the tests run
//   CHATFN_LAMBDA_URL  test the three Lambda functions under `cargo lambda watch` at this address,
//                      through a path router (support/lambda-router.js; scripts/lambda-e2e.sh)
//   CHATFN_WORKER=1    test the Cloudflare Worker: each file starts its own `wrangler dev`
//                      (support/worker.js; scripts/worker-e2e.sh)

import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DefaultChatTransport } from 'ai';
import { attachToLambda } from './lambda-router.js';
import { startWorker } from './worker.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const JS_ROOT = path.resolve(here, '..');
export const REPO_ROOT = path.resolve(JS_ROOT, '..', '..');
export const DEFAULT_BIN = path.join(REPO_ROOT, 'target', 'debug', 'chatfn-local');

const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
// The log line may be colored; strip ANSI escapes before matching.
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;
const LISTENING = /listening on (https?:\/\/[^\s"'`]+)/;

const live = new Set();
process.once('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/**
 * Starts chatfn-local wired to the mock model at `modelBaseUrl`, or attaches to CHATFN_BASE_URL.
 * With `dataDir`, its chats are kept there (and survive a restart on the same folder).
 * Returns `{ baseUrl, secretKey, stop(), logs() }`.
 */
export async function startChatfn({ modelBaseUrl, env = {}, args = [], dataDir } = {}) {
  if (process.env.CHATFN_LAMBDA_URL) return attachToLambda();
  if (process.env.CHATFN_WORKER === '1') return startWorker({ modelBaseUrl, env });
  if (process.env.CHATFN_BASE_URL) {
    const secretKey = process.env.CHATFN_SECRET_KEY;
    if (!secretKey) {
      throw new Error('CHATFN_BASE_URL is set, so CHATFN_SECRET_KEY must be set too (the key that server uses)');
    }
    return {
      baseUrl: process.env.CHATFN_BASE_URL.replace(/\/+$/, ''),
      secretKey,
      external: true,
      logs: () => '(external server: no logs captured)',
      mark: () => undefined,
      stop: async () => {},
    };
  }

  const bin = process.env.CHATFN_LOCAL_BIN ? path.resolve(process.env.CHATFN_LOCAL_BIN) : DEFAULT_BIN;
  if (!existsSync(bin)) {
    throw new Error(
      `chatfn-local binary not found at ${bin}. Build it (cargo build -p local --bin chatfn-local) or set CHATFN_LOCAL_BIN, ` +
        'or point CHATFN_BASE_URL at a running server.',
    );
  }
  if (!modelBaseUrl) throw new Error('startChatfn: modelBaseUrl is required');

  const secretKey = env.CHATFN_SECRET_KEY || process.env.CHATFN_SECRET_KEY || `sk_test_${randomBytes(24).toString('hex')}`;
  // A data folder keeps the chats across a restart (SQLite); without one they live in memory.
  const store = dataDir ? ['--data-dir', dataDir] : ['--memory'];
  const child = spawn(bin, ['--host', '127.0.0.1', '--port', '0', ...store, ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      CHATFN_SECRET_KEY: secretKey,
      CHATFN_MODEL_PROVIDER: 'openai',
      CHATFN_MODEL_BASE_URL: modelBaseUrl,
      CHATFN_MODEL: 'mock-model',
      CHATFN_MODEL_API_KEY: 'test-key',
      RUST_LOG: 'info',
      NO_COLOR: '1',
      ...env,
    },
  });
  live.add(child);

  let stdout = '';
  let stderr = '';
  const echo = process.env.CHATFN_TEST_LOG === '1';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  let exitInfo;
  exited.then((info) => {
    exitInfo = info;
  });

  /** The output so far, or since `mark` (from `mark()`). */
  const logs = (mark = { stdout: 0, stderr: 0 }) =>
    `--- chatfn-local stdout ---\n${tail(stdout.slice(mark.stdout))}\n--- chatfn-local stderr ---\n${tail(stderr.slice(mark.stderr))}`;
  const mark = () => ({ stdout: stdout.length, stderr: stderr.length });

  const baseUrl = await new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => {
      fail(new Error(`chatfn-local did not print "listening on http://…" within ${START_TIMEOUT_MS} ms\n${logs()}`));
    }, START_TIMEOUT_MS);
    function fail(error) {
      clearTimeout(timer);
      reject(error);
    }
    child.stdout.on('data', (data) => {
      stdout += data;
      if (echo) process.stderr.write(`[chatfn stdout] ${data}`);
      buffer += data;
      const lines = buffer.split('\n');
      buffer = lines.pop();
      for (const line of lines) {
        const match = line.replace(ANSI, '').match(LISTENING);
        if (match) {
          clearTimeout(timer);
          resolve(match[1].replace(/[.,;)]+$/, '').replace(/\/+$/, ''));
        }
      }
    });
    child.stderr.on('data', (data) => {
      stderr += data;
      if (echo) process.stderr.write(`[chatfn stderr] ${data}`);
    });
    child.once('error', (error) => fail(new Error(`could not spawn ${bin}: ${error.message}`)));
    exited.then(({ code, signal }) => fail(new Error(`chatfn-local exited early (code ${code}, signal ${signal})\n${logs()}`)));
  }).catch(async (error) => {
    await stopChild(child, exited);
    throw error;
  });

  return {
    baseUrl,
    secretKey,
    external: false,
    pid: child.pid,
    logs,
    mark,
    /** True while the process runs. */
    alive: () => exitInfo === undefined,
    stop: () => stopChild(child, exited),
  };
}

async function stopChild(child, exited) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.pid, 'SIGTERM');
  } catch {
    return;
  }
  let timer;
  const killed = new Promise((resolve) => {
    timer = setTimeout(() => {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      resolve();
    }, STOP_GRACE_MS);
  });
  await Promise.race([exited, killed]);
  clearTimeout(timer);
  await exited;
}

function tail(text, max = 8000) {
  return text.length > max ? `…${text.slice(-max)}` : text;
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

/**
 * `fetch` with a JSON body; returns `{ status, headers, text, json }` (json undefined if not JSON).
 * `fetchImpl` replaces the global `fetch` (e.g. an untapped one).
 */
export async function request(url, { method = 'GET', token, body, rawBody, headers = {}, timeout = 15000, fetchImpl = fetch } = {}) {
  const init = { method, headers: { ...headers }, signal: AbortSignal.timeout(timeout) };
  if (token) init.headers.authorization = `Bearer ${token}`;
  if (rawBody !== undefined) {
    init.body = rawBody;
    init.headers['content-type'] ??= 'application/json';
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['content-type'] = 'application/json';
  }
  const response = await fetchImpl(url, init);
  const text = await response.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/**
 * A request with node:http that still yields the response when the server answers before the
 * whole body is uploaded (413 on a large body) and then closes the connection.
 * `body` is a Buffer; with `chunked: true` no Content-Length is sent.
 */
export function rawRequest(url, { method = 'POST', headers = {}, body, chunked = false, timeout = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const allHeaders = { ...headers, connection: 'close' };
    if (body) {
      if (chunked) allHeaders['transfer-encoding'] = 'chunked';
      else allHeaders['content-length'] = String(body.length);
    }
    let gotResponse = false;
    const req = http.request(
      { method, hostname: target.hostname, port: target.port, path: target.pathname + target.search, headers: allHeaders },
      (res) => {
        gotResponse = true;
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => finish());
        res.on('error', () => finish());
        res.on('close', () => finish());
        let done = false;
        function finish() {
          if (done) return;
          done = true;
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          let json;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, headers: res.headers, text, json });
        }
      },
    );
    const timer = setTimeout(() => {
      req.destroy(new Error(`rawRequest ${method} ${url}: no response within ${timeout} ms`));
    }, timeout);
    req.on('error', (error) => {
      // EPIPE/ECONNRESET after the server answered early is expected; the response handler resolves.
      if (!gotResponse) {
        // Give a response that is already on the wire a moment to be parsed.
        setTimeout(() => {
          if (!gotResponse) {
            clearTimeout(timer);
            reject(new Error(`rawRequest ${method} ${url}: connection failed before any response: ${error.message}`, { cause: error }));
          }
        }, 200);
      }
    });
    // One write: the kernel buffers take the whole body before the server answers, so an early
    // answer does not turn into EPIPE on our side.
    req.end(body);
  });
}

// ---------------------------------------------------------------------------------------------
// Sessions, tokens, transport

export function newChatId(prefix = 'chat') {
  return `${prefix}-${randomUUID()}`;
}

export function sessionBody(chatId) {
  return {
    type: 'chat.agent',
    externalId: chatId,
    taskIdentifier: 'chat',
    triggerConfig: { basePayload: { messages: [], trigger: 'preload', chatId } },
  };
}

/** `POST /api/v1/sessions`; returns the raw response (`{ status, json, ... }`). */
export function createSessionRaw(server, chatId, options = {}) {
  const key = 'key' in options ? options.key : server.secretKey;
  return request(`${server.baseUrl}/api/v1/sessions`, { method: 'POST', token: key, body: sessionBody(chatId) });
}

/** Creates (or fetches) the session for `chatId` and returns its `publicAccessToken`. */
export async function createSession(server, chatId) {
  const res = await createSessionRaw(server, chatId);
  if (res.status !== 200 && res.status !== 201) {
    throw new Error(`POST /api/v1/sessions for ${chatId} answered ${res.status}: ${res.text}`);
  }
  if (typeof res.json?.publicAccessToken !== 'string') {
    throw new Error(`POST /api/v1/sessions for ${chatId}: no publicAccessToken in ${res.text}`);
  }
  return res.json.publicAccessToken;
}

/** `POST /api/v1/sessions/<chatId>/token`; returns the raw response. */
export function mintTokenRaw(server, chatId, options = {}) {
  const key = 'key' in options ? options.key : server.secretKey;
  return request(`${server.baseUrl}/api/v1/sessions/${encodeURIComponent(chatId)}/token`, { method: 'POST', token: key });
}

/** A `DefaultChatTransport` from the real `ai` package, pointed at chatfn with a bearer token. */
export function makeTransport(server, token, options = {}) {
  return new DefaultChatTransport({
    api: `${server.baseUrl}/api/chat`,
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    ...options,
  });
}

export function chatUrl(server, chatId, suffix) {
  return `${server.baseUrl}/api/chat/${encodeURIComponent(chatId)}/${suffix}`;
}

/** `GET /api/chat/<chatId>/messages` → the persisted UIMessage[] (throws unless 200). */
export async function getMessages(server, chatId, token, { timeout } = {}) {
  const res = await request(chatUrl(server, chatId, 'messages'), { token, timeout });
  if (res.status !== 200 || !Array.isArray(res.json?.messages)) {
    throw new Error(`GET /api/chat/${chatId}/messages answered ${res.status}: ${res.text}`);
  }
  return res.json.messages;
}

/** `POST /api/chat/<chatId>/stop`; returns the raw response. */
export function stopChat(server, chatId, token, body = {}) {
  return request(chatUrl(server, chatId, 'stop'), { method: 'POST', token, body });
}

/**
 * Starts the mock model and chatfn for one test file. Returns `{ mock, server, teardown }`;
 * `teardown` always stops both, and is safe to call when the setup half failed.
 */
export async function setupFile(startMock, { env, dataDir } = {}) {
  const mock = await startMock();
  let server;
  try {
    server = await startChatfn({ modelBaseUrl: mock.baseUrl, env, dataDir });
  } catch (error) {
    await mock.close();
    throw error;
  }
  return {
    mock,
    server,
    teardown: async () => {
      try {
        await server.stop();
      } finally {
        await mock.close();
      }
    },
  };
}
