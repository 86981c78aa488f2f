// Hostile ids and header bytes over a real socket, where a client can send what `fetch` and the
// in-process tests cannot: unnormalized `..` segments, percent-encoded slashes and CR/LF, raw
// control bytes in the request line and in headers. Ids are refused with a JSON 404 and never
// reach a chat; bytes HTTP forbids are refused by the HTTP layer before any route; the server
// keeps serving after each.

import assert from 'node:assert/strict';
import net from 'node:net';
import { e2eSuite } from '../support/harness.js';
import { getMessages, request } from '../support/server.js';

/** One HTTP/1.1 exchange on a fresh connection, written byte for byte as given. */
function rawExchange(baseUrl, head, body = '') {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    const chunks = [];
    const timer = setTimeout(() => socket.destroy(new Error(`no answer to ${JSON.stringify(head.slice(0, 80))}`)), 10_000);
    // Written, not ended: the server drops a connection half-closed before it answers.
    socket.on('connect', () => socket.write(Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(body)])));
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const [headText, ...rest] = text.split('\r\n\r\n');
      const [statusLine, ...headerLines] = headText.split('\r\n');
      const headers = {};
      for (const line of headerLines) {
        const index = line.indexOf(':');
        if (index > 0) headers[line.slice(0, index).toLowerCase()] = line.slice(index + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, text: rest.join('\r\n\r\n'), raw: text });
    });
  });
}

function parsed(response) {
  try {
    return JSON.parse(response.text);
  } catch {
    return undefined;
  }
}

e2eSuite('hostile ids and header bytes', (ctx, e2e) => {
  let chat;

  async function stillServing(label) {
    const messages = await getMessages(ctx.server, chat.chatId, chat.token).catch((error) => {
      throw new Error(`after ${label}, the server no longer serves a good request: ${error.message}`);
    });
    assert.ok(Array.isArray(messages), label);
    assert.equal(ctx.mock.requests.length, 0, `${label} reached the model`);
  }

  const get = (path, credential, extra = '') =>
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${credential}\r\n${extra}Connection: close\r\n\r\n`;

  e2e('ids with path, header and control characters → a JSON 404 that echoes nothing', async () => {
    chat = await ctx.newChat('hostile');
    const ids = [
      ['an unnormalized dot-dot segment', '..'],
      ['an unnormalized dot segment', '.'],
      ['a percent-encoded slash', 'a%2Fb'],
      ['a percent-encoded climb out', '..%2F..%2Fetc%2Fpasswd'],
      ['percent-encoded dots', '%2E%2E'],
      ['percent-encoded CR/LF and a header', 'x%0D%0ASet-Cookie:%20stolen=1'],
      ['a percent-encoded NUL', 'a%00b'],
      ['bytes that are not UTF-8', '%FF%FE'],
      ['10 KB', 'a'.repeat(10_000)],
    ];
    const routes = [
      (id) => `/api/chat/${id}/messages`,
      (id) => `/api/chat/${id}/stream`,
      (id) => `/realtime/v1/sessions/${id}/in/records`,
      (id) => `/realtime/v1/sessions/${id}/out`,
      (id) => `/api/v1/sessions/${id}`,
    ];
    for (const [label, id] of ids) {
      for (const route of routes) {
        const path = route(id);
        const response = await rawExchange(ctx.server.baseUrl, get(path, ctx.server.secretKey, 'Timeout-Seconds: 1\r\n'));
        const shown = `${path.slice(0, 80)} (${label})`;
        assert.equal(response.status, 404, `${shown}: ${response.raw.slice(0, 300)}`);
        const body = parsed(response);
        assert.equal(body?.ok, false, `${shown}: ${response.text.slice(0, 300)}`);
        assert.equal(body?.code, 'not_found', shown);
        assert.match(body?.error ?? '', /no chat session/, shown);
        assert.ok(response.text.length < 1024, `${shown}: the error echoes ${response.text.length} bytes`);
        assert.equal(response.headers['set-cookie'], undefined, `${shown}: a header was injected`);
      }
      await stillServing(label);
    }
  });

  e2e('ids as JSON carries them → 422 on session start and send', async () => {
    for (const id of ['..', '.', 'a/b', '../../etc/passwd', 'x\r\nSet-Cookie: stolen=1', 'a\u0000b', 'a'.repeat(10_000)]) {
      const label = JSON.stringify(id.slice(0, 40));
      const start = await request(`${ctx.server.baseUrl}/api/v1/sessions`, {
        method: 'POST', token: ctx.server.secretKey, body: { type: 'chat.agent', externalId: id, taskIdentifier: 'chat' },
      });
      assert.equal(start.status, 422, `session start with ${label}: ${start.text.slice(0, 300)}`);
      assert.equal(start.json?.code, 'invalid_request', label);
      assert.match(start.json?.error ?? '', /a chat id is 1 to 256 characters/, label);
      const send = await request(`${ctx.server.baseUrl}/api/chat`, {
        method: 'POST', token: ctx.server.secretKey,
        body: { id, messages: [{ id: 'u1', role: 'user', parts: [{ type: 'text', text: 'hi' }] }], trigger: 'submit-message' },
      });
      assert.equal(send.status, 422, `send with ${label}: ${send.text.slice(0, 300)}`);
      assert.match(send.json?.error ?? '', /a chat id is 1 to 256 characters/, label);
    }
    await stillServing('ids in bodies');
  });

  e2e('bytes HTTP forbids in the request line or a header → 400 from the HTTP layer, before any route', async () => {
    const messages = `/api/chat/${chat.chatId}/messages`;
    const cases = [
      ['a CR in the path', `GET /api/chat/a\rb/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${chat.token}\r\nConnection: close\r\n\r\n`],
      ['a space in the path', `GET /api/chat/a b/messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`],
      ['a NUL in the path', `GET /api/chat/a\u0000b/messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`],
      ['a bare CR inside the Authorization header', `GET ${messages} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${chat.token}\rX-Injected: 1\r\nConnection: close\r\n\r\n`],
      ['a NUL inside a header', `GET ${messages} HTTP/1.1\r\nHost: x\r\nX-Part-Id: a\u0000b\r\nAuthorization: Bearer ${chat.token}\r\nConnection: close\r\n\r\n`],
      ['a header name with a space', `GET ${messages} HTTP/1.1\r\nHost: x\r\nAuthori zation: Bearer ${chat.token}\r\nConnection: close\r\n\r\n`],
    ];
    for (const [label, head] of cases) {
      const response = await rawExchange(ctx.server.baseUrl, head);
      assert.equal(response.status, 400, `${label}: ${response.raw.slice(0, 300)}`);
      await stillServing(label);
    }
  });

  e2e('a 64 KiB bearer token → 401 JSON', async () => {
    const huge = `${Buffer.from('{"alg":"HS256"}').toString('base64url')}.${'A'.repeat(64 * 1024)}.sig`;
    const response = await rawExchange(ctx.server.baseUrl, get(`/api/chat/${chat.chatId}/messages`, huge));
    assert.equal(response.status, 401, response.raw.slice(0, 300));
    const body = parsed(response);
    assert.equal(body?.code, 'unauthorized');
    assert.match(body?.error ?? '', /malformed or its signature does not match/);
    await stillServing('a huge token');
  });
});
