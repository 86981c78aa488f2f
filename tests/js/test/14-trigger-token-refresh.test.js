// An expired session token: chatfn answers 401, the transport calls its `accessToken` callback
// once (which mints with `auth.createPublicToken`) and retries with the fresh token.

import assert from 'node:assert/strict';
import { e2eSuite } from '../support/harness.js';
import { newChatId } from '../support/server.js';
import { assertWellFormedReply, readChunks, sendTurn, textOf, userMessage } from '../support/stream.js';
import { describeExchanges, expiredToken, makeTriggerTransport, tapFetch, triggerServerActions } from '../support/trigger.js';

e2eSuite('trigger: expired token refresh', (ctx, e2e) => {
  e2e('an append with an expired token is retried once with a fresh token and the same X-Part-Id', async () => {
    const actions = triggerServerActions(ctx.server);
    const chatId = newChatId('trigger-expired');
    await actions.startSession({ chatId });
    const expired = expiredToken(ctx.server, chatId);
    const { transport, calls } = makeTriggerTransport(ctx.server, actions, {
      sessions: { [chatId]: { publicAccessToken: expired, isStreaming: false } },
    });
    ctx.mock.handle(() => ({ text: ['Fresh ', 'token works.'] }));

    const tap = tapFetch();
    let turn;
    try {
      turn = await sendTurn(transport, { chatId, messages: [userMessage('Hello')] });
    } finally {
      tap.restore();
    }
    assertWellFormedReply(turn.chunks);
    assert.equal(textOf(turn.message), 'Fresh token works.');
    assert.deepEqual(calls.accessToken, [chatId], 'accessToken was called exactly once');
    assert.deepEqual(calls.startSession, [], 'the saved state needed no new session');

    const appends = tap.to('/in/append', 'POST');
    assert.equal(appends.length, 2, describeExchanges(tap.exchanges));
    await Promise.all(appends.map((e) => e.done));
    assert.equal(appends[0].status, 401, appends[0].text);
    assert.equal(appends[0].requestHeaders.authorization, `Bearer ${expired}`);
    assert.equal(appends[1].status, 200, appends[1].text);
    assert.notEqual(appends[1].requestHeaders.authorization, `Bearer ${expired}`);
    assert.equal(appends[1].requestHeaders['x-part-id'], appends[0].requestHeaders['x-part-id'], 'the retry reuses the X-Part-Id');
    assert.equal(appends[1].requestBody, appends[0].requestBody, 'the retry repeats the body');

    // The reply was read with the fresh token, and the turn-complete handed over a newer one.
    const reads = tap.to('/out', 'GET');
    assert.equal(reads.length, 1, describeExchanges(tap.exchanges));
    assert.equal(reads[0].requestHeaders.authorization, appends[1].requestHeaders.authorization);
    const after = transport.getSession(chatId).publicAccessToken;
    assert.notEqual(after, expired);
    assert.notEqual(`Bearer ${after}`, appends[1].requestHeaders.authorization, 'the turn-complete token replaced the minted one');
  });

  e2e('a reconnect with an expired token refreshes it on .out and resumes', async () => {
    const actions = triggerServerActions(ctx.server);
    const chatId = newChatId('trigger-expired-out');
    ctx.mock.handle(() => ({ text: Array.from({ length: 8 }, (_, i) => `t${i} `), delayMs: 60 }));

    // A turn in flight, saved by a page whose token then expired.
    const first = makeTriggerTransport(ctx.server, actions);
    const stream = await first.transport.sendMessages({ chatId, messages: [userMessage('Go')], trigger: 'submit-message' });
    let saved;
    const before = await readChunks(stream, {
      label: 'the page before the reload',
      onChunk: (chunk) => {
        if (chunk.type === 'start') {
          saved = { ...first.transport.getSession(chatId), publicAccessToken: expiredToken(ctx.server, chatId) };
          first.transport.dispose(); // leave the page: the reader is dropped, no stop is sent
        }
      },
    });
    assert.ok(saved && !before.chunks.some((c) => c.type === 'finish'), 'the page left mid-reply');

    const tap = tapFetch();
    const second = makeTriggerTransport(ctx.server, actions, { sessions: { [chatId]: saved } });
    let replay;
    try {
      const resumed = await second.transport.reconnectToStream({ chatId });
      assert.ok(resumed);
      replay = await readChunks(resumed, { label: 'reconnect with an expired token' });
    } finally {
      tap.restore();
    }
    assertWellFormedReply(replay.chunks);
    assert.equal(textOf(replay.message), Array.from({ length: 8 }, (_, i) => `t${i} `).join(''));
    assert.deepEqual(second.calls.accessToken, [chatId]);
    const reads = tap.to('/out', 'GET');
    assert.equal(reads.length, 2, describeExchanges(tap.exchanges));
    assert.equal(reads[0].status, 401);
    assert.equal(reads[1].status, 200);
    assert.equal(reads[1].requestHeaders['last-event-id'], reads[0].requestHeaders['last-event-id']);
  });
});
