// A client that hangs up does not cancel the turn: the reply is completed and persisted.

import assert from 'node:assert/strict';
import { validateUIMessages } from 'ai';
import { e2eSuite } from '../support/harness.js';
import { getMessages } from '../support/server.js';
import { sendTurn, textOf, userMessage, waitFor } from '../support/stream.js';

const DELTAS = Array.from({ length: 15 }, (_, i) => `chunk${i} `);

e2eSuite('client disconnect', (ctx, e2e) => {
  e2e('the turn completes and is persisted after the client aborts its fetch', async () => {
    const { chatId, token, transport } = await ctx.newChat('disconnect');
    ctx.mock.handle(() => ({ text: DELTAS, delayMs: 60 }));
    const u1 = userMessage('Keep going without me');

    const controller = new AbortController();
    const live = await sendTurn(transport, {
      chatId,
      messages: [u1],
      abortSignal: controller.signal,
      expectAbort: true,
      onChunk: (chunk) => {
        if (chunk.type === 'text-delta') controller.abort();
      },
    });
    assert.ok(live.aborted, 'the client hung up mid-reply');
    const messageId = live.chunks[0]?.messageId;

    const persisted = await waitFor(async () => {
      const messages = await getMessages(ctx.server, chatId, token);
      return messages.length === 2 && textOf(messages[1]) === DELTAS.join('') ? messages : false;
    }, { timeout: 20000, interval: 200, message: 'the complete reply in /messages' });

    await validateUIMessages({ messages: persisted });
    assert.equal(persisted[0].id, u1.id);
    assert.equal(persisted[1].role, 'assistant');
    assert.equal(persisted[1].id, messageId, 'the persisted reply is the one the client started to receive');
    assert.equal(ctx.mock.requests.length, 1);
    assert.equal(ctx.mock.requests[0].completed, true, 'the model call ran to its end');
    assert.equal(ctx.mock.requests[0].aborted, false, 'the model call was not cancelled');
  });
});
