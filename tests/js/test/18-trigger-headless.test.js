// Headless turns: an append made with the secret key (a server-side caller, here the SDK's
// `sessions.open(chatId).in.send`) runs its turn with no reader attached. Later, the history has
// the reply and a reader sees its records.

import assert from 'node:assert/strict';
import { e2eSuite } from '../support/harness.js';
import { contentText } from '../support/mock-openai.js';
import { getMessages, newChatId } from '../support/server.js';
import { assertWellFormedReply, sendTurn, textOf, userMessage, waitFor } from '../support/stream.js';
import {
  appendRaw, dataRecords, describeExchanges, describeRecords, makeTriggerTransport, messageInput, rawFetch, readWholeLog, sessionUrl,
  tapFetch, triggerServerActions, turnCompletes,
} from '../support/trigger.js';

e2eSuite('trigger: headless turns', (ctx, e2e) => {
  e2e('a secret-key append runs the turn without a reader; the history and a later reader have it', async () => {
    const actions = triggerServerActions(ctx.server);
    const chatId = newChatId('trigger-headless');
    await actions.startSession({ chatId });
    const token = await actions.mint(chatId);
    ctx.mock.handle((req) => ({ text: ['Headless ', `reply ${req.index}.`] }));

    // The server-side SDK call.
    const u1 = userMessage('Summarise the day');
    const tap = tapFetch();
    try {
      await actions.sessions.open(chatId).in.send(messageInput(chatId, u1));
    } finally {
      tap.restore();
    }
    assert.deepEqual(tap.exchanges.map((e) => `${e.method} ${e.path}`), [`POST /realtime/v1/sessions/${chatId}/in/append`], describeExchanges(tap.exchanges));
    await tap.exchanges[0].done;
    assert.equal(tap.exchanges[0].status, 200, tap.exchanges[0].text);
    assert.equal(tap.exchanges[0].requestHeaders.authorization, `Bearer ${ctx.server.secretKey}`);
    const seq = tap.exchanges[0].json.seq;

    // Nobody reads, yet the model is called and the reply is persisted.
    await ctx.mock.waitForRequests(1, { timeout: 10000 });
    const persisted = await waitFor(async () => {
      const messages = await getMessages(ctx.server, chatId, token);
      return messages.length === 2 ? messages : false;
    }, { timeout: 10000, message: 'the headless reply to be persisted' });
    assert.deepEqual(persisted[0].parts, u1.parts);
    assert.equal(persisted[1].role, 'assistant');
    assert.equal(textOf(persisted[1]), 'Headless reply 0.');

    // A reader arriving afterwards sees the whole turn and its boundary, and is told it is settled.
    const log = await readWholeLog(ctx.server, chatId, token);
    const chunks = dataRecords(log).map((r) => r.chunk);
    assertWellFormedReply(chunks);
    assert.equal(chunks[0].messageId, persisted[1].id);
    const boundaries = turnCompletes(log);
    assert.equal(boundaries.length, 1, describeRecords(log));
    assert.equal(boundaries[0].headerMap['session-in-event-id'], String(seq));
    assert.equal(log.at(-1).control, 'turn-complete');

    // A raw secret-key append, once that turn is done, runs the next turn the same way.
    const u2 = userMessage('And tomorrow?');
    const second = await appendRaw(ctx.server, chatId, ctx.server.secretKey, messageInput(chatId, u2));
    assert.equal(second.status, 200, second.text);
    assert.ok(second.json.seq > seq, `seq ${second.json.seq} after ${seq}`);
    const all = await waitFor(async () => {
      const messages = await getMessages(ctx.server, chatId, token);
      return messages.length === 4 ? messages : false;
    }, { timeout: 10000, message: 'the second headless turn to be persisted' });
    assert.deepEqual(all.map((m) => m.role), ['user', 'assistant', 'user', 'assistant']);
    assert.equal(all[2].id, u2.id);
    assert.equal(textOf(all[3]), 'Headless reply 1.');
    const inputs = await rawFetch(sessionUrl(ctx.server, chatId, 'in/records'), { token });
    assert.equal(inputs.json.records.length, 2, inputs.text);

    // A browser that has read the stream continues the chat: the model sees the headless turns.
    const fullLog = await waitFor(async () => {
      const records = await readWholeLog(ctx.server, chatId, token);
      return turnCompletes(records).length === 2 ? records : false;
    }, { timeout: 10000, message: 'two turn boundaries' });
    const { transport } = makeTriggerTransport(ctx.server, actions, {
      sessions: { [chatId]: { publicAccessToken: token, lastEventId: String(fullLog.at(-1).seq), isStreaming: false } },
    });
    const u4 = userMessage('Thanks');
    const before = ctx.mock.requests.length;
    const turn = await sendTurn(transport, { chatId, messages: [...all, u4] });
    assertWellFormedReply(turn.chunks);
    assert.equal(textOf(turn.message), `Headless reply ${before}.`);
    const history = ctx.mock.requests[before].messages.filter((m) => m.role !== 'system').map((m) => [m.role, contentText(m.content)]);
    assert.deepEqual(history, [
      ['user', 'Summarise the day'], ['assistant', 'Headless reply 0.'],
      ['user', 'And tomorrow?'], ['assistant', 'Headless reply 1.'],
      ['user', 'Thanks'],
    ]);
  });

  // A headless append that arrives while another turn of the chat runs queues behind it: the
  // executor that finishes a turn starts the next one, with no reader attached.
  e2e('a headless append queued behind a running turn runs after it, still without a reader', async () => {
    const actions = triggerServerActions(ctx.server);
    const chatId = newChatId('trigger-headless-queue');
    await actions.startSession({ chatId });
    const token = await actions.mint(chatId);
    ctx.mock.handle((req) => ({ text: ['Queued ', `reply ${req.index}.`], firstDelayMs: 300 }));
    const u1 = userMessage('First');
    const u2 = userMessage('Second, while the first runs');
    const first = await appendRaw(ctx.server, chatId, ctx.server.secretKey, messageInput(chatId, u1));
    await ctx.mock.waitForRequests(1, { timeout: 5000 });
    const second = await appendRaw(ctx.server, chatId, ctx.server.secretKey, messageInput(chatId, u2));
    assert.equal(first.status, 200, first.text);
    assert.equal(second.status, 200, second.text);
    const messages = await waitFor(async () => {
      const list = await getMessages(ctx.server, chatId, token);
      return list.length === 4 ? list : false;
    }, { timeout: 2500, message: 'both headless turns to be persisted (the second was queued behind the first)' });
    assert.deepEqual(messages.map((m) => m.id).filter((id, i) => i % 2 === 0), [u1.id, u2.id]);
  });
});
