// Stopping a reply mid-stream with POST /api/chat/<chatId>/stop.

import assert from 'node:assert/strict';
import { validateUIMessages } from 'ai';
import { e2eSuite } from '../support/harness.js';
import { contentText, lastMessage } from '../support/mock-openai.js';
import { getMessages, stopChat } from '../support/server.js';
import { assertSameMessages, assertWellFormedReply, sendTurn, textOf, userMessage, waitFor } from '../support/stream.js';

const DELTAS = Array.from({ length: 30 }, (_, i) => `word${i} `);
const FULL = DELTAS.join('');

e2eSuite('stop mid-stream', (ctx, e2e) => {
  e2e('stop ends the turn with abort, keeps the partial reply, and the next turn sees it', async () => {
    const { chatId, token, transport } = await ctx.newChat('stop');
    ctx.mock.handle((req) => {
      const user = contentText(lastMessage(req.messages, 'user')?.content);
      if (user === 'Write a long essay') return { text: DELTAS, delayMs: 100 };
      return { text: 'Short answer.' };
    });
    const u1 = userMessage('Write a long essay');

    let stopResponse;
    const turn = await sendTurn(transport, {
      chatId,
      messages: [u1],
      onChunk: (_chunk, _i, chunks) => {
        if (!stopResponse && chunks.filter((c) => c.type === 'text-delta').length === 3) {
          stopResponse = stopChat(ctx.server, chatId, token).catch((error) => ({ status: 'network error', text: String(error) }));
        }
      },
    });
    assert.ok(stopResponse, 'the stop was sent');
    const stopped = await stopResponse;
    assert.equal(stopped.status, 200, `POST /stop: ${stopped.text}`);
    assert.equal(stopped.json?.ok, true);

    // The stream ends with an abort chunk (no error), carrying the partial reply.
    assertWellFormedReply(turn.chunks, { end: 'abort' });
    const partial = textOf(turn.message);
    assert.ok(partial.length > 0, 'the partial reply has text');
    assert.ok(partial.length < FULL.length, 'the reply was cut short');
    assert.ok(FULL.startsWith(partial), 'the partial reply is a prefix of the full reply');

    // The partial reply is persisted.
    const persisted = await waitFor(async () => {
      const messages = await getMessages(ctx.server, chatId, token);
      return messages.length === 2 ? messages : false;
    }, { message: 'the partial reply to be persisted' });
    await validateUIMessages({ messages: persisted });
    assert.equal(persisted[1].role, 'assistant');
    assert.equal(persisted[1].id, turn.message.id);
    assert.equal(textOf(persisted[1]), partial, 'the persisted partial reply is what the client received');

    // Nothing is streaming any more.
    await waitFor(async () => {
      const stream = await transport.reconnectToStream({ chatId });
      if (stream === null) return true;
      await stream.cancel().catch(() => {});
      return false;
    }, { timeout: 10000, interval: 200, message: 'reconnectToStream to return null after the stop' });

    // A new turn works and the model sees the partial reply.
    const requestsBefore = ctx.mock.requests.length;
    const u2 = userMessage('Never mind');
    const next = await sendTurn(transport, { chatId, messages: [u1, turn.message, u2] });
    assertWellFormedReply(next.chunks);
    assert.equal(textOf(next.message), 'Short answer.');
    const request = ctx.mock.requests[requestsBefore];
    assert.ok(request, 'the new turn called the model');
    const history = request.messages.filter((m) => m.role !== 'system' && m.role !== 'developer').map((m) => [m.role, contentText(m.content)]);
    assert.deepEqual(history, [
      ['user', 'Write a long essay'],
      ['assistant', partial],
      ['user', 'Never mind'],
    ]);

    const after = await getMessages(ctx.server, chatId, token);
    assertSameMessages(after.slice(2), [u2, next.message]);
  });

  e2e('stop when nothing is running is accepted and harmless', async () => {
    const { chatId, token, transport } = await ctx.newChat('stop-idle');
    const idle = await stopChat(ctx.server, chatId, token);
    assert.equal(idle.status, 200, idle.text);
    assert.equal(idle.json?.ok, true);

    ctx.mock.handle(() => ({ text: 'Still here.' }));
    const turn = await sendTurn(transport, { chatId, messages: [userMessage('Hello?')] });
    assertWellFormedReply(turn.chunks);
    assert.equal(textOf(turn.message), 'Still here.');
  });
});
