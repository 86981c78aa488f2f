// Refusals on the Trigger wire, with raw requests: bad tokens, missing scopes, duplicate part ids,
// oversized records, unknown and closed chats. The server keeps serving after each.

import assert from 'node:assert/strict';
import { e2eSuite } from '../support/harness.js';
import { sessionClaims, signHs256, tamperPayload } from '../support/jwt.js';
import { chatUrl, newChatId, rawRequest } from '../support/server.js';
import { assertWellFormedReply, sendTurn, textOf, userMessage } from '../support/stream.js';
import {
  appendRaw, dataRecords, describeExchanges, describeRecords, expiredToken, makeTriggerTransport, messageInput, rawFetch,
  readOut, readWholeLog, sessionUrl, tapFetch, triggerServerActions, turnCompletes,
} from '../support/trigger.js';

e2eSuite('trigger: errors', (ctx, e2e) => {
  let actions;
  const setup = () => (actions ??= triggerServerActions(ctx.server));

  /** A chat with a session and a read/write token from `auth.createPublicToken`. */
  async function newTriggerChat(prefix) {
    const { startSession, mint } = setup();
    const chatId = newChatId(prefix);
    await startSession({ chatId });
    return { chatId, token: await mint(chatId) };
  }

  /** The server still answers a settled read of `chatId` (it did not wedge or die). */
  async function stillServing(chatId, token) {
    const read = await readOut(ctx.server, chatId, token, { peekSettled: true, stopWhen: null, timeout: 5000 });
    assert.equal(read.status, 200, `the server stopped serving: ${read.text}`);
  }

  e2e('bad tokens: another chat\'s → 403, expired → 401, forged → 401, read-only append → 403', async () => {
    const { chatId, token } = await newTriggerChat('errors-auth');
    const other = await newTriggerChat('errors-other');
    const input = messageInput(chatId, userMessage('Hi'));
    const forged = signHs256(sessionClaims(chatId), 'not-the-secret-key');
    const tampered = tamperPayload(other.token, (claims) => ({ ...claims, scopes: [`read:sessions:${chatId}`, `write:sessions:${chatId}`] }));
    const noneAlg = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(sessionClaims(chatId))).toString('base64url')}.`;
    const readOnly = await setup().mint(chatId, { write: false });

    const cases = [
      ['another chat\'s token', other.token, 403],
      ['an expired token', expiredToken(ctx.server, chatId), 401],
      ['a token signed with another key', forged, 401],
      ['a token whose claims were changed', tampered, 401],
      ['an unsigned token', noneAlg, 401],
      ['no token', undefined, 401],
    ];
    for (const [label, bad, status] of cases) {
      const append = await appendRaw(ctx.server, chatId, bad, input);
      assert.equal(append.status, status, `append with ${label}: ${append.text}`);
      assert.equal(append.json?.ok === true, false);
      const read = await readOut(ctx.server, chatId, bad, { peekSettled: true, stopWhen: null, timeout: 5000 });
      assert.equal(read.status, status, `out with ${label}: ${read.text}`);
      const messages = await rawFetch(chatUrl(ctx.server, chatId, 'messages'), { token: bad });
      assert.equal(messages.status, status, `messages with ${label}: ${messages.text}`);
    }

    // A read-only token reads but cannot append.
    const refused = await appendRaw(ctx.server, chatId, readOnly, input);
    assert.equal(refused.status, 403, refused.text);
    await stillServing(chatId, readOnly);

    // Nothing of it reached the chat.
    const inputs = await rawFetch(sessionUrl(ctx.server, chatId, 'in/records'), { token });
    assert.equal(inputs.status, 200, inputs.text);
    assert.deepEqual(inputs.json.records, []);
    assert.equal(ctx.mock.requests.length, 0);
  });

  e2e('the same X-Part-Id twice is one record and one turn', async () => {
    const { chatId, token } = await newTriggerChat('errors-dup');
    ctx.mock.handle(() => ({ text: 'Once.' }));
    const input = messageInput(chatId, userMessage('Only once'));
    const partId = '0b6e7f1c-9a44-4c53-8d0e-5a1f3c2b7d10';
    const first = await appendRaw(ctx.server, chatId, token, input, { partId });
    const second = await appendRaw(ctx.server, chatId, token, input, { partId });
    assert.equal(first.status, 200, first.text);
    assert.equal(second.status, 200, second.text);
    assert.equal(typeof first.json.seq, 'number');
    assert.equal(second.json.seq, first.json.seq, 'a retried append gets the same seq');

    const read = await readOut(ctx.server, chatId, token);
    assertWellFormedReply(dataRecords(read.records).map((r) => r.chunk));
    const log = await readWholeLog(ctx.server, chatId, token);
    const boundaries = turnCompletes(log);
    assert.equal(boundaries.length, 1, describeRecords(log));
    assert.equal(boundaries[0].headerMap['session-in-event-id'], String(first.json.seq));
    assert.equal(ctx.mock.requests.length, 1, 'one model call');
    const inputs = await rawFetch(sessionUrl(ctx.server, chatId, 'in/records'), { token });
    assert.equal(inputs.json.records.length, 1, inputs.text);
    const messages = await rawFetch(chatUrl(ctx.server, chatId, 'messages'), { token });
    assert.deepEqual(messages.json.messages.map((m) => m.role), ['user', 'assistant']);
  });

  e2e('an append over 1 MiB → 413 (exactly 1 MiB is fine); an unknown chat → 404', async () => {
    const { chatId, token } = await newTriggerChat('errors-size');
    // Stop records padded to a size: harmless when accepted.
    const stopOfSize = (size) => {
      const base = JSON.stringify({ kind: 'stop', message: '' });
      return Buffer.from(JSON.stringify({ kind: 'stop', message: 'x'.repeat(size - Buffer.byteLength(base)) }));
    };
    for (const [size, status] of [[1024 * 1024, 200], [1024 * 1024 + 1, 413]]) {
      const body = stopOfSize(size);
      assert.equal(body.length, size);
      const answer = await rawRequest(sessionUrl(ctx.server, chatId, 'in/append'), {
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-part-id': `size-${size}` },
        body,
      });
      assert.equal(answer.status, status, `${size} bytes: ${answer.text}`);
    }
    await stillServing(chatId, token);

    // Through the transport: the 413 is thrown to the app, with no retry.
    const { transport } = makeTriggerTransport(ctx.server, setup(), {
      sessions: { [chatId]: { publicAccessToken: token, isStreaming: false } },
    });
    const tap = tapFetch();
    try {
      await assert.rejects(
        transport.sendMessages({ chatId, messages: [userMessage('x'.repeat(1024 * 1024))], trigger: 'submit-message' }),
        (error) => error.status === 413,
      );
    } finally {
      tap.restore();
    }
    assert.equal(tap.to('/in/append').length, 1, describeExchanges(tap.exchanges));
    assert.equal(tap.to('/out').length, 0, 'no read after a refused append');
    await stillServing(chatId, token);

    const unknown = newChatId('errors-unknown');
    const unknownToken = await setup().mint(unknown);
    const append = await appendRaw(ctx.server, unknown, unknownToken, messageInput(unknown, userMessage('Hello?')));
    assert.equal(append.status, 404, append.text);
    const read = await readOut(ctx.server, unknown, unknownToken, { timeout: 5000 });
    assert.equal(read.status, 404, read.text);
    const session = await rawFetch(`${ctx.server.baseUrl}/api/v1/sessions/${unknown}`, { token: ctx.server.secretKey });
    assert.equal(session.status, 404, session.text);
    await stillServing(chatId, token);
    assert.equal(ctx.mock.requests.length, 0);
  });

  e2e('after sessions.close an append is 409 session_closed, and the transport marks the chat closed', async () => {
    const { sessions } = setup();
    const chatId = newChatId('errors-closed');
    const { transport } = makeTriggerTransport(ctx.server, setup());
    ctx.mock.handle(() => ({ text: 'Before the close.' }));
    const u1 = userMessage('Hello');
    const turn = await sendTurn(transport, { chatId, messages: [u1] });
    assert.equal(textOf(turn.message), 'Before the close.');
    const token = transport.getSession(chatId).publicAccessToken;

    const closed = await sessions.close(chatId, { reason: 'archived' });
    assert.ok(closed.closedAt instanceof Date, `closedAt: ${closed.closedAt}`);
    assert.equal(closed.closedReason, 'archived');
    const again = await sessions.close(chatId, { reason: 'archived' });
    assert.equal(again.closedReason, 'archived', 'closing twice is fine');

    const raw = await appendRaw(ctx.server, chatId, token, messageInput(chatId, userMessage('Still there?')));
    assert.equal(raw.status, 409, raw.text);
    assert.equal(raw.json.code, 'session_closed');
    assert.equal(raw.json.closedReason, 'archived');
    assert.equal(raw.headers.get('x-should-retry'), 'false');

    // The transport: the 409 is terminal, the chat is closed, later sends fail without a request.
    const tap = tapFetch();
    try {
      await assert.rejects(
        transport.sendMessages({ chatId, messages: [u1, turn.message, userMessage('Still there?')], trigger: 'submit-message' }),
        (error) => error.status === 409 && error.code === 'session_closed',
      );
      assert.equal(transport.sessionStatus(chatId), 'closed');
      assert.equal(transport.sessionClosedReason(chatId), 'archived');
      const appends = tap.to('/in/append').length;
      assert.equal(appends, 1, describeExchanges(tap.exchanges));
      await assert.rejects(
        transport.sendMessages({ chatId, messages: [userMessage('And now?')], trigger: 'submit-message' }),
        (error) => error.code === 'session_closed',
      );
      assert.equal(tap.to('/in/append').length, appends, 'a closed chat sends nothing');
      assert.equal(await transport.reconnectToStream({ chatId }), null);
    } finally {
      tap.restore();
    }

    // The history stays readable; creating the session again is refused without retries.
    const messages = await rawFetch(chatUrl(ctx.server, chatId, 'messages'), { token });
    assert.equal(messages.status, 200, messages.text);
    assert.equal(messages.json.messages.length, 2);
    const recreate = await rawFetch(`${ctx.server.baseUrl}/api/v1/sessions`, {
      method: 'POST',
      token: ctx.server.secretKey,
      body: { type: 'chat.agent', externalId: chatId, taskIdentifier: 'chat', triggerConfig: { basePayload: { messages: [], trigger: 'preload', chatId } } },
    });
    assert.equal(recreate.status, 409, recreate.text);
    assert.equal(recreate.headers.get('x-should-retry'), 'false');
    assert.equal(ctx.mock.requests.length, 1);
  });

  e2e('after all of that, a new chat works end to end', async () => {
    const { transport } = makeTriggerTransport(ctx.server, setup());
    const chatId = newChatId('errors-after');
    ctx.mock.handle(() => ({ text: ['All ', 'good.'] }));
    const turn = await sendTurn(transport, { chatId, messages: [userMessage('Still alive?')] });
    assertWellFormedReply(turn.chunks);
    assert.equal(textOf(turn.message), 'All good.');
  });
});
