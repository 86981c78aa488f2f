// Resuming after a dropped connection with DefaultChatTransport.reconnectToStream.

import assert from 'node:assert/strict';
import { e2eSuite } from '../support/harness.js';
import { getMessages } from '../support/server.js';
import { assertSameMessages, assertWellFormedReply, readChunks, sendTurn, textOf, userMessage, waitFor } from '../support/stream.js';

const DELTAS = Array.from({ length: 20 }, (_, i) => `w${i} `);
const DELAY_MS = 100;

/** Reconnects until the server says 204 (nothing streaming); cancels any replay it still gets. */
async function waitForNoActiveStream(transport, chatId) {
  return waitFor(async () => {
    const stream = await transport.reconnectToStream({ chatId });
    if (stream === null) return true;
    await stream.cancel().catch(() => {});
    return false;
  }, { timeout: 10000, interval: 200, message: 'reconnectToStream to return null (204) after the turn' });
}

e2eSuite('resume after a dropped connection', (ctx, e2e) => {
  e2e('reconnectToStream replays from start and follows the reply live', async () => {
    const { chatId, token, transport } = await ctx.newChat('resume');
    ctx.mock.handle(() => ({ text: DELTAS, delayMs: DELAY_MS }));
    const u1 = userMessage('Tell me a long story');

    // Drop the POST after a few deltas.
    const controller = new AbortController();
    const live = await sendTurn(transport, {
      chatId,
      messages: [u1],
      abortSignal: controller.signal,
      expectAbort: true,
      onChunk: (_chunk, _i, chunks) => {
        if (chunks.filter((c) => c.type === 'text-delta').length === 3) controller.abort();
      },
    });
    assert.ok(live.aborted, 'the POST was dropped mid-reply');
    assert.ok(live.chunks.length > 0 && live.chunks[0].type === 'start');
    assert.ok(!live.chunks.some((c) => c.type === 'finish'), 'the drop happened before the reply finished');

    // Resume while the model is still producing.
    const stream = await transport.reconnectToStream({ chatId });
    assert.ok(stream, 'reconnectToStream returned null (204) while the reply was still streaming');
    const replay = await readChunks(stream, { label: `reconnectToStream(${chatId})` });
    assertWellFormedReply(replay.chunks);
    assert.equal(replay.chunks[0].type, 'start', 'the replay starts at the start chunk');
    assert.deepEqual(
      replay.chunks.slice(0, live.chunks.length),
      live.chunks,
      'the chunks seen before the drop are a prefix of the replay',
    );
    assert.equal(textOf(replay.message), DELTAS.join(''), 'the replay delivers the whole reply');
    assert.equal(ctx.mock.requests.length, 1, 'resuming does not call the model again');

    // The replayed message is the one the server persisted.
    const persisted = await waitFor(async () => {
      const messages = await getMessages(ctx.server, chatId, token);
      return messages.length === 2 ? messages : false;
    }, { message: 'the reply to be persisted' });
    assertSameMessages(persisted, [u1, replay.message]);

    // Nothing is streaming any more.
    await waitForNoActiveStream(transport, chatId);
  });

  e2e('reconnectToStream returns null when nothing is streaming', async () => {
    const { chatId, transport } = await ctx.newChat('resume-idle');
    // Before any turn.
    assert.equal(await transport.reconnectToStream({ chatId }), null);

    // After a completed turn.
    ctx.mock.handle(() => ({ text: 'Done.' }));
    const turn = await sendTurn(transport, { chatId, messages: [userMessage('Hi')] });
    assertWellFormedReply(turn.chunks);
    await waitForNoActiveStream(transport, chatId);
  });

  e2e('a resume that reads the live reply to its end sees the same chunks as a full read', async () => {
    const { chatId, transport } = await ctx.newChat('resume-twice');
    ctx.mock.handle(() => ({ text: DELTAS.slice(0, 8), delayMs: 80 }));
    const u1 = userMessage('Tell me something');

    // Keep the POST open and reconnect in parallel after the first delta.
    let resumed;
    let resolveFirstDelta;
    const firstDelta = new Promise((resolve) => {
      resolveFirstDelta = resolve;
    });
    const full = sendTurn(transport, {
      chatId,
      messages: [u1],
      onChunk: (chunk) => {
        if (chunk.type === 'text-delta') resolveFirstDelta();
      },
    });
    await Promise.race([firstDelta, full]);
    const stream = await transport.reconnectToStream({ chatId });
    assert.ok(stream, 'reconnectToStream returned null while the POST was still streaming');
    resumed = await readChunks(stream, { label: 'parallel reconnectToStream' });
    const original = await full;

    assertWellFormedReply(original.chunks);
    assertWellFormedReply(resumed.chunks);
    assert.deepEqual(resumed.chunks, original.chunks, 'a second reader gets the same chunks');
    assert.deepEqual(resumed.message, original.message);
  });
});
