// Bad requests get the right status and a JSON error, never reach the model, and the server
// keeps serving afterwards.

import assert from 'node:assert/strict';
import { before } from 'node:test';
import { e2eSuite } from '../support/harness.js';
import { nowSeconds, sessionClaims, signHs256, tamperPayload, unsignedJwt } from '../support/jwt.js';
import { chatUrl, getMessages, makeTransport, rawRequest, request } from '../support/server.js';
import { assertWellFormedReply, sendTurn, textOf, userMessage } from '../support/stream.js';

const MiB = 1024 * 1024;

function assertJsonError(res, statuses, label) {
  const expected = [].concat(statuses);
  assert.ok(expected.includes(res.status), `${label}: expected ${expected.join(' or ')}, got ${res.status}: ${res.text.slice(0, 500)}`);
  assert.ok(res.json && typeof res.json === 'object', `${label}: the body is not JSON: ${res.text.slice(0, 500)}`);
  assert.equal(res.json.ok, false, `${label}: ok must be false`);
  assert.equal(typeof res.json.error, 'string', `${label}: error must be a string`);
  assert.ok(res.json.error.length > 0, `${label}: error is empty`);
  assert.match(String(res.json.code), /^[a-z][a-z0-9_]*$/, `${label}: code must be snake_case`);
}

e2eSuite('bad input', (ctx, e2e) => {
  let A; // the chat under attack
  let B; // another chat

  async function stillServing(label) {
    const messages = await getMessages(ctx.server, A.chatId, A.token).catch((error) => {
      throw new Error(`after ${label}, the server no longer serves a good request: ${error.message}`);
    });
    assert.ok(Array.isArray(messages));
    assert.equal(ctx.mock.requests.length, 0, `${label} reached the model`);
  }

  const chatBody = (chatId, extra = {}) => ({ id: chatId, messages: [userMessage('hi')], trigger: 'submit-message', ...extra });

  /** The four chat routes, called with `token` (or none) on `chatId`. */
  const chatRoutes = (chatId, token) => ({
    'POST /api/chat': () => request(`${ctx.server.baseUrl}/api/chat`, { method: 'POST', token, body: chatBody(chatId) }),
    'GET /stream': () => request(chatUrl(ctx.server, chatId, 'stream'), { token }),
    'POST /stop': () => request(chatUrl(ctx.server, chatId, 'stop'), { method: 'POST', token, body: {} }),
    'GET /messages': () => request(chatUrl(ctx.server, chatId, 'messages'), { token }),
  });

  before(async () => {
    A = await ctx.newChat('victim');
    B = await ctx.newChat('other');
  });

  e2e('malformed or invalid bodies → 400 / 422', async () => {
    const post = (rawBody) => request(`${ctx.server.baseUrl}/api/chat`, { method: 'POST', token: A.token, rawBody });
    const cases = [
      ['malformed JSON', '{"id": "x", "messages": [', 400],
      ['an empty body', '', [400, 422]],
      ['a JSON array', '[]', [400, 422]],
      ['messages not an array', JSON.stringify({ id: A.chatId, messages: 'hi', trigger: 'submit-message' }), [400, 422]],
      ['an unknown trigger', JSON.stringify(chatBody(A.chatId, { trigger: 'make-coffee' })), [400, 422]],
    ];
    for (const [label, rawBody, statuses] of cases) {
      assertJsonError(await post(rawBody), statuses, label);
      await stillServing(label);
    }
  });

  e2e('a body over 1 MiB → 413', async () => {
    const big = Buffer.from(JSON.stringify(chatBody(A.chatId, {
      messages: [userMessage('x'.repeat(MiB + 4 * 1024))],
    })));
    assert.ok(big.length > MiB);
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${A.token}` };
    const url = `${ctx.server.baseUrl}/api/chat`;

    assertJsonError(await rawRequest(url, { headers, body: big }), 413, 'over 1 MiB with Content-Length');
    await stillServing('a 413 with Content-Length');

    assertJsonError(await rawRequest(url, { headers, body: big, chunked: true }), 413, 'over 1 MiB, chunked');
    await stillServing('a chunked 413');
  });

  e2e('missing or unusable tokens → 401 on every chat route', async () => {
    const valid = sessionClaims(A.chatId);
    const tokens = {
      'no token': undefined,
      'a token that is not a JWT': 'not-a-jwt',
      'an expired token': signHs256(sessionClaims(A.chatId, { iat: nowSeconds() - 7200, ttlSeconds: 3600 }), ctx.server.secretKey),
      'a token signed with another key': signHs256(valid, `wrong-${ctx.server.secretKey}`),
      'an alg:none token': unsignedJwt(valid),
      'an alg:none token with an HS256 header': unsignedJwt(valid, { header: { alg: 'HS256' } }),
      // B's genuine token, its payload rewritten to claim chat A.
      'a tampered payload': tamperPayload(B.token, (payload) => ({
        ...payload,
        scopes: [`read:sessions:${A.chatId}`, `write:sessions:${A.chatId}`],
      })),
    };
    for (const [label, token] of Object.entries(tokens)) {
      for (const [route, call] of Object.entries(chatRoutes(A.chatId, token))) {
        assertJsonError(await call(), 401, `${route} with ${label}`);
      }
      await stillServing(label);
    }

    // Not a Bearer credential.
    const basic = await request(chatUrl(ctx.server, A.chatId, 'messages'), {
      headers: { authorization: `Basic ${Buffer.from(`user:${A.token}`).toString('base64')}` },
    });
    assertJsonError(basic, 401, 'a Basic authorization header');
    await stillServing('a Basic authorization header');
  });

  e2e('a valid token for another chat → 403 on every chat route', async () => {
    for (const [route, call] of Object.entries(chatRoutes(A.chatId, B.token))) {
      assertJsonError(await call(), 403, `${route} with chat B's token`);
      await stillServing(`${route} with chat B's token`);
    }
  });

  e2e('DefaultChatTransport surfaces the status of a refused request', async () => {
    const forged = makeTransport(ctx.server, signHs256(sessionClaims(A.chatId), 'wrong-key'));
    await assert.rejects(
      forged.sendMessages({ chatId: A.chatId, messages: [userMessage('hi')], trigger: 'submit-message', messageId: undefined, abortSignal: undefined }),
      (error) => error.statusCode === 401,
    );
    // A refused resume is an error, not "nothing to resume".
    await assert.rejects(forged.reconnectToStream({ chatId: A.chatId }), (error) => error.statusCode === 401);
    const other = makeTransport(ctx.server, B.token);
    await assert.rejects(other.reconnectToStream({ chatId: A.chatId }), (error) => error.statusCode === 403);
    await stillServing('refused transport requests');
  });

  e2e('positive controls: tokens signed here with the secret key are accepted', async () => {
    // As @trigger.dev/sdk auth.createPublicToken signs them (with iss and aud).
    const sdkStyle = signHs256(sessionClaims(A.chatId), ctx.server.secretKey);
    assert.deepEqual(await getMessages(ctx.server, A.chatId, sdkStyle), [], 'an SDK-style token (iss/aud claims) was refused');
    // Minimal claims.
    const iat = nowSeconds();
    const minimal = signHs256({ sub: 'env_test', pub: true, scopes: [`read:sessions:${A.chatId}`, `write:sessions:${A.chatId}`], iat, exp: iat + 600 }, ctx.server.secretKey);
    assert.deepEqual(await getMessages(ctx.server, A.chatId, minimal), [], 'a minimal token was refused');
  });

  e2e('after all that, a full turn works', async () => {
    ctx.mock.handle(() => ({ text: ['All ', 'good.'] }));
    const turn = await sendTurn(A.transport, { chatId: A.chatId, messages: [userMessage('Are you OK?')] });
    assertWellFormedReply(turn.chunks);
    assert.equal(textOf(turn.message), 'All good.');
    assert.equal(ctx.mock.requests.length, 1, 'one model call for the good turn');
    const messages = await getMessages(ctx.server, A.chatId, A.token);
    assert.equal(messages.length, 2);
  });
});
