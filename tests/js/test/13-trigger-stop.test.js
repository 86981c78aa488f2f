// `stopGeneration(chatId)` mid-reply: the transport appends `{"kind":"stop"}` and drops its
// reader; chatfn ends the turn with `abort` and a turn-complete and keeps the partial reply; the
// next send works (it must find the stopped turn's boundary, or the SDK fails it with "The
// previous turn's output was lost").

import assert from 'node:assert/strict';
import { e2eSuite } from '../support/harness.js';
import { contentText, lastMessage } from '../support/mock-openai.js';
import { getMessages, newChatId } from '../support/server.js';
import { assertSameMessages, assertWellFormedReply, readChunks, sendTurn, textOf, userMessage, waitFor } from '../support/stream.js';
import {
  dataRecords, describeExchanges, describeRecords, makeTriggerTransport, readOut, tapFetch, triggerServerActions, turnCompletes,
} from '../support/trigger.js';

const DELTAS = Array.from({ length: 30 }, (_, i) => `word${i} `);
const FULL = DELTAS.join('');

e2eSuite('trigger: stop mid-reply', (ctx, e2e) => {
  e2e('stopGeneration ends the reply, keeps the partial, and the next turn works', async () => {
    const actions = triggerServerActions(ctx.server);
    const { transport } = makeTriggerTransport(ctx.server, actions);
    const chatId = newChatId('trigger-stop');
    ctx.mock.handle((req) => {
      const user = contentText(lastMessage(req.messages, 'user')?.content);
      return user === 'Write a long essay' ? { text: DELTAS, delayMs: 100 } : { text: 'Short answer.' };
    });

    const tap = tapFetch();
    const u1 = userMessage('Write a long essay');
    let stopped;
    let turn;
    try {
      turn = await sendTurn(transport, {
        chatId,
        messages: [u1],
        onChunk: (_chunk, _i, chunks) => {
          if (!stopped && chunks.filter((c) => c.type === 'text-delta').length === 3) {
            stopped = transport.stopGeneration(chatId);
          }
        },
      });
      assert.ok(stopped, 'stopGeneration was called');
      assert.equal(await stopped, true, 'stopGeneration reports the stop was sent');
    } finally {
      tap.restore();
    }

    // The stop went out as an append; the reply stream then ended cleanly (no error chunk, no finish).
    const appends = tap.to('/in/append', 'POST');
    assert.equal(appends.length, 2, describeExchanges(tap.exchanges));
    assert.deepEqual(JSON.parse(appends[1].requestBody), { kind: 'stop' });
    await Promise.all(appends.map((e) => e.done));
    assert.equal(appends[1].status, 200, appends[1].text);
    assert.notEqual(appends[1].requestHeaders['x-part-id'], appends[0].requestHeaders['x-part-id']);
    const messageSeq = appends[0].json.seq;
    assert.ok(!turn.chunks.some((c) => c.type === 'finish' || c.type === 'error'), `chunks: ${turn.chunks.map((c) => c.type)}`);
    const clientPartial = textOf(turn.message);
    assert.ok(clientPartial.length > 0 && FULL.startsWith(clientPartial), `client partial: ${clientPartial}`);
    assert.equal(transport.getSession(chatId).isStreaming, false);

    // The server kept the partial reply, cut short.
    const token = transport.getSession(chatId).publicAccessToken;
    const persisted = await waitFor(async () => {
      const messages = await getMessages(ctx.server, chatId, token);
      return messages.length === 2 ? messages : false;
    }, { message: 'the partial reply to be persisted' });
    const partial = textOf(persisted[1]);
    assert.equal(persisted[1].id, turn.message.id);
    assert.ok(partial.startsWith(clientPartial), 'the persisted partial extends what the client saw');
    assert.ok(partial.length < FULL.length, 'the reply was cut short');
    assert.ok(FULL.startsWith(partial));

    // On the wire: the turn ended with `abort`, then a turn-complete for the message's seq.
    const log = await readOut(ctx.server, chatId, token, { timeout: 5000 });
    assert.equal(log.status, 200, log.text);
    const chunks = dataRecords(log.records).map((r) => r.chunk);
    assertWellFormedReply(chunks, { end: 'abort' });
    const boundary = turnCompletes(log.records);
    assert.equal(boundary.length, 1, describeRecords(log.records));
    assert.equal(boundary[0].headerMap['session-in-event-id'], String(messageSeq));

    // The next send works: the SDK skips to the stopped turn's boundary, then reads the new turn.
    const u2 = userMessage('Never mind');
    const next = await sendTurn(transport, { chatId, messages: [u1, turn.message, u2] });
    assertWellFormedReply(next.chunks);
    assert.equal(textOf(next.message), 'Short answer.');
    const request = ctx.mock.requests.at(-1);
    assert.deepEqual(
      request.messages.filter((m) => m.role !== 'system').map((m) => [m.role, contentText(m.content)]),
      [['user', 'Write a long essay'], ['assistant', partial], ['user', 'Never mind']],
      'the model saw the partial reply',
    );
    const after = await getMessages(ctx.server, chatId, token);
    assertSameMessages(after.slice(2), [u2, next.message]);
  });

  e2e('a stop between turns is accepted and harmless', async () => {
    const actions = triggerServerActions(ctx.server);
    const { transport } = makeTriggerTransport(ctx.server, actions);
    const chatId = newChatId('trigger-stop-idle');
    ctx.mock.handle(() => ({ text: 'Still here.' }));
    const u1 = userMessage('Hello?');
    const turn1 = await sendTurn(transport, { chatId, messages: [u1] });
    assertWellFormedReply(turn1.chunks);

    assert.equal(await transport.stopGeneration(chatId), true);
    const u2 = userMessage('Again?');
    const turn2 = await sendTurn(transport, { chatId, messages: [u1, turn1.message, u2] });
    assertWellFormedReply(turn2.chunks);
    assert.equal(textOf(turn2.message), 'Still here.');
    assert.equal(ctx.mock.requests.length, 2, 'the idle stop started no turn');
  });

  e2e('aborting the signal of a live send stops the turn too', async () => {
    const actions = triggerServerActions(ctx.server);
    const { transport } = makeTriggerTransport(ctx.server, actions);
    const chatId = newChatId('trigger-stop-abort');
    ctx.mock.handle((req) => {
      const user = contentText(lastMessage(req.messages, 'user')?.content);
      return user === 'Write a long essay' ? { text: DELTAS, delayMs: 100 } : { text: 'Short answer.' };
    });
    const controller = new AbortController();
    const u1 = userMessage('Write a long essay');
    const stream = await transport.sendMessages({ chatId, messages: [u1], trigger: 'submit-message', abortSignal: controller.signal });
    const turn = await readChunks(stream, {
      expectAbort: true,
      onChunk: (_c, _i, chunks) => {
        if (chunks.filter((c) => c.type === 'text-delta').length === 2) controller.abort();
      },
    });
    assert.ok(!turn.chunks.some((c) => c.type === 'finish'));

    // The fire-and-forget stop reaches the server: the turn is cut short and persisted.
    const token = transport.getSession(chatId).publicAccessToken;
    const persisted = await waitFor(async () => {
      const messages = await getMessages(ctx.server, chatId, token);
      return messages.length === 2 ? messages : false;
    }, { message: 'the partial reply to be persisted' });
    assert.ok(textOf(persisted[1]).length < FULL.length, 'the reply was cut short');
    const u2 = userMessage('Never mind');
    const next = await sendTurn(transport, { chatId, messages: [u1, turn.message, u2] });
    assertWellFormedReply(next.chunks);
    assert.equal(textOf(next.message), 'Short answer.');
  });
});
