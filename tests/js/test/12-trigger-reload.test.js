// A page reload in the middle of a reply: the transport's persisted state (from `getSession`)
// seeds a new transport, whose `reconnectToStream` replays the in-flight turn from its start and
// follows it live to its end.

import assert from 'node:assert/strict';
import { e2eSuite } from '../support/harness.js';
import { contentText, lastMessage } from '../support/mock-openai.js';
import { getMessages, newChatId } from '../support/server.js';
import { assertSameMessages, assertWellFormedReply, readChunks, sendTurn, textOf, userMessage, waitFor } from '../support/stream.js';
import { describeExchanges, makeTriggerTransport, readOut, tapFetch, triggerServerActions } from '../support/trigger.js';

const DELTAS = Array.from({ length: 16 }, (_, i) => `w${i} `);
const DELAY_MS = 90;

/**
 * Reads `stream` (through readChunks) until `count` text-delta chunks arrived, then calls
 * `leave()`, which saves the state and leaves the page: `transport.dispose()` drops the reader
 * (no stop is sent) and the stream ends. Returns the chunks read.
 */
async function readThenLeave(stream, count, leave) {
  const read = await readChunks(stream, {
    label: 'the page before the reload',
    onChunk: (_chunk, _i, chunks) => {
      if (chunks.filter((c) => c.type === 'text-delta').length === count) leave();
    },
  });
  assert.equal(read.chunks.filter((c) => c.type === 'text-delta').length, count, `chunks: ${read.chunks.map((c) => c.type)}`);
  assert.ok(!read.chunks.some((c) => c.type === 'finish'), 'the page left before the reply finished');
  return read.chunks;
}

e2eSuite('trigger: reload mid-reply', (ctx, e2e) => {
  e2e('a new transport with the saved state replays the in-flight turn exactly once', async () => {
    const actions = triggerServerActions(ctx.server);
    const chatId = newChatId('trigger-reload');
    ctx.mock.handle((req) => {
      const user = contentText(lastMessage(req.messages, 'user')?.content);
      return user === 'Tell a long story' ? { text: DELTAS, delayMs: DELAY_MS } : { text: 'Hi there.' };
    });

    // Turn 1 completes, so turn 2 starts from a known cursor.
    const first = makeTriggerTransport(ctx.server, actions);
    const u1 = userMessage('Hello');
    const turn1 = await sendTurn(first.transport, { chatId, messages: [u1] });
    assertWellFormedReply(turn1.chunks);
    const cursorBeforeTurn2 = first.transport.getSession(chatId).lastEventId;
    assert.match(cursorBeforeTurn2 ?? '', /^\d+$/);

    // Turn 2 is slow; read a few chunks, then save the state as the page would.
    const u2 = userMessage('Tell a long story');
    const stream = await first.transport.sendMessages({ chatId, messages: [u1, turn1.message, u2], trigger: 'submit-message' });
    let saved;
    const live = await readThenLeave(stream, 3, () => {
      saved = first.transport.getSession(chatId);
      first.transport.dispose();
    });
    assert.equal(saved.isStreaming, true, 'the saved state says a turn is streaming');
    assert.equal(saved.lastEventId, cursorBeforeTurn2, 'the saved cursor is the one from before the turn');
    assert.equal(typeof saved.activeInputSeq, 'number', 'the saved state has the turn\'s input seq');
    assert.equal(typeof saved.publicAccessToken, 'string');

    // The reloaded page.
    const tap = tapFetch();
    let replay;
    const second = makeTriggerTransport(ctx.server, actions, { sessions: { [chatId]: saved } });
    try {
      const resumed = await second.transport.reconnectToStream({ chatId });
      assert.ok(resumed, 'reconnectToStream returned null while the turn was streaming');
      replay = await readChunks(resumed, { label: `reconnectToStream(${chatId})` });
    } finally {
      tap.restore();
    }
    const reads = tap.to('/out', 'GET');
    assert.ok(reads.length >= 1, describeExchanges(tap.exchanges));
    assert.equal(reads[0].requestHeaders['last-event-id'], cursorBeforeTurn2, 'the reconnect resumes from the saved cursor');
    assert.equal(reads[0].requestHeaders['x-peek-settled'], undefined, 'no settled peek while an input is active');
    assert.equal(tap.to('/in/append').length, 0, 'a reconnect sends nothing on .in');
    assert.deepEqual(second.calls, { accessToken: [], startSession: [] });

    // The replay is the whole turn, once: it starts at `start`, contains what the old page saw
    // as a prefix, and ends with the reply's `finish`.
    assertWellFormedReply(replay.chunks);
    assert.deepEqual(replay.chunks.slice(0, live.length), live, 'the chunks seen before the reload are a prefix of the replay');
    assert.equal(textOf(replay.message), DELTAS.join(''), 'no lost or duplicated text');
    assert.equal(replay.chunks.filter((c) => c.type === 'text-delta').length, DELTAS.length);
    assert.equal(replay.message.parts.filter((p) => p.type === 'text').length, 1, 'one text part');
    assert.equal(ctx.mock.requests.length, 2, 'the reload did not call the model again');

    // It folds to exactly the message the server persisted.
    const persisted = await waitFor(async () => {
      const messages = await getMessages(ctx.server, chatId, saved.publicAccessToken);
      return messages.length === 4 ? messages : false;
    }, { message: 'turn 2 to be persisted' });
    assertSameMessages(persisted, [u1, turn1.message, u2, replay.message]);

    // After the turn: the finished state resumes nothing, without a request ...
    const finished = second.transport.getSession(chatId);
    assert.equal(finished.isStreaming, false);
    const idleTap = tapFetch();
    try {
      const third = makeTriggerTransport(ctx.server, actions, { sessions: { [chatId]: finished } });
      assert.equal(await third.transport.reconnectToStream({ chatId }), null);
    } finally {
      idleTap.restore();
    }
    assert.equal(idleTap.exchanges.length, 0, `no request: ${describeExchanges(idleTap.exchanges)}`);

    // ... and a settled peek from that cursor says settled and sends nothing.
    const started = Date.now();
    const peek = await readOut(ctx.server, chatId, finished.publicAccessToken, {
      lastEventId: finished.lastEventId,
      peekSettled: true,
      stopWhen: null,
      timeout: 5000,
    });
    assert.equal(peek.status, 200, peek.text);
    assert.equal(peek.headers.get('x-session-settled'), 'true');
    assert.ok(peek.ended, 'the settled read closes its body');
    assert.deepEqual(peek.records, []);
    assert.ok(Date.now() - started < 3000, `the settled read took ${Date.now() - started} ms`);
  });

  e2e('a reload whose saved state has no active input peeks, and is not told "settled" mid-turn', async () => {
    const actions = triggerServerActions(ctx.server);
    const chatId = newChatId('trigger-reload-peek');
    ctx.mock.handle(() => ({ text: DELTAS.slice(0, 10), delayMs: DELAY_MS }));

    const first = makeTriggerTransport(ctx.server, actions);
    const u1 = userMessage('Tell a long story');
    const stream = await first.transport.sendMessages({ chatId, messages: [u1], trigger: 'submit-message' });
    let saved;
    const live = await readThenLeave(stream, 2, () => {
      // State saved by an app that does not keep `activeInputSeq`.
      const { activeInputSeq, ...rest } = first.transport.getSession(chatId);
      assert.equal(typeof activeInputSeq, 'number');
      saved = rest;
      first.transport.dispose();
    });
    assert.equal(saved.isStreaming, true);
    assert.equal(saved.lastEventId, undefined, 'a first turn has no cursor: replay from seq 0');

    const tap = tapFetch();
    let replay;
    try {
      const second = makeTriggerTransport(ctx.server, actions, { sessions: { [chatId]: saved } });
      const resumed = await second.transport.reconnectToStream({ chatId });
      assert.ok(resumed, 'reconnectToStream returned null while the turn was streaming');
      replay = await readChunks(resumed, { label: `reconnectToStream(${chatId})` });
    } finally {
      tap.restore();
    }
    const reads = tap.to('/out', 'GET');
    assert.equal(reads[0].requestHeaders['x-peek-settled'], '1');
    assert.equal(reads[0].requestHeaders['last-event-id'], undefined);
    assert.equal(reads[0].responseHeaders['x-session-settled'], undefined, 'a running turn is not settled');
    assertWellFormedReply(replay.chunks);
    assert.deepEqual(replay.chunks.slice(0, live.length), live);
    assert.equal(textOf(replay.message), DELTAS.slice(0, 10).join(''));
  });
});
