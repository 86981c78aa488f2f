// A conversation through the stock TriggerChatTransport: each send appends only the new message,
// chatfn keeps the history, replies stream incrementally, and the history it persists is what
// the client folded.

import assert from 'node:assert/strict';
import { e2eSuite } from '../support/harness.js';
import { contentText, lastMessage } from '../support/mock-openai.js';
import { getMessages, newChatId } from '../support/server.js';
import { assertSameMessages, assertWellFormedReply, sendTurn, textOf, userMessage } from '../support/stream.js';
import { describeExchanges, makeTriggerTransport, tapFetch, triggerServerActions } from '../support/trigger.js';

const DELTAS = Array.from({ length: 8 }, (_, i) => `piece${i} `);
const DELAY_MS = 70;

/** The conversation the model was given, without the system prompt. */
const history = (request) => request.messages
  .filter((m) => m.role !== 'system' && m.role !== 'developer')
  .map((m) => [m.role, contentText(m.content)]);

e2eSuite('trigger: multi-turn conversation', (ctx, e2e) => {
  e2e('two turns through sendMessages: slim appends, server-side history, incremental replies', async () => {
    const actions = triggerServerActions(ctx.server);
    const { transport, calls } = makeTriggerTransport(ctx.server, actions);
    const chatId = newChatId('trigger-turns');
    ctx.mock.handle((req) => {
      const user = contentText(lastMessage(req.messages, 'user')?.content);
      if (user === 'First question') return { text: DELTAS, delayMs: DELAY_MS };
      return { text: ['Second ', 'answer.'] };
    });

    const tap = tapFetch();
    let turn1;
    let turn2;
    const u1 = userMessage('First question');
    const u2 = userMessage('Second question');
    try {
      turn1 = await sendTurn(transport, { chatId, messages: [u1] });
      const afterTurn1 = transport.getSession(chatId);
      assert.equal(afterTurn1.isStreaming, false, 'the turn-complete ended the turn');
      assert.match(afterTurn1.lastEventId ?? '', /^\d+$/, 'the cursor is the last seq_num');
      turn2 = await sendTurn(transport, { chatId, messages: [u1, turn1.message, u2] });
    } finally {
      tap.restore();
    }

    // Turn 1 is well formed, complete and arrived spread out over the model's pace.
    assertWellFormedReply(turn1.chunks);
    assert.equal(textOf(turn1.message), DELTAS.join(''));
    const deltaTimes = turn1.chunks.flatMap((c, i) => (c.type === 'text-delta' ? [turn1.arrivals[i]] : []));
    assert.ok(deltaTimes.length >= 2, `several text-delta chunks: ${deltaTimes.length}`);
    const spread = deltaTimes.at(-1) - deltaTimes[0];
    assert.ok(spread > (DELTAS.length - 1) * DELAY_MS * 0.6, `text-deltas arrived only ${spread.toFixed(0)} ms apart: buffered`);
    assert.ok(deltaTimes[0] < ctx.mock.requests[0].finishedAt, 'the first delta reached the client before the model finished');
    assertWellFormedReply(turn2.chunks);
    assert.equal(textOf(turn2.message), 'Second answer.');

    // The session was started once through the action; no token refresh was needed.
    assert.deepEqual(calls.startSession, [chatId]);
    assert.deepEqual(calls.accessToken, []);

    // Each append carried only the newest message (the slim wire), with X-Part-Id.
    const appends = tap.to('/in/append', 'POST');
    assert.equal(appends.length, 2, describeExchanges(tap.exchanges));
    const bodies = appends.map((e) => JSON.parse(e.requestBody));
    assert.deepEqual(bodies[0], { kind: 'message', payload: { message: u1, chatId, trigger: 'submit-message' } });
    assert.deepEqual(bodies[1], { kind: 'message', payload: { message: u2, chatId, trigger: 'submit-message' } });
    await Promise.all(appends.map((e) => e.done));
    for (const append of appends) {
      assert.equal(append.status, 200, append.text);
      assert.equal(append.json.ok, true);
      assert.equal(typeof append.json.seq, 'number');
      assert.match(append.requestHeaders['x-part-id'] ?? '', /^[0-9a-f-]{36}$/);
    }
    assert.ok(appends[1].json.seq > appends[0].json.seq, 'input seqs increase');

    // Turn 2's .out read resumed after turn 1's records.
    const reads = tap.to('/out', 'GET');
    assert.equal(reads.length, 2, describeExchanges(tap.exchanges));
    assert.equal(reads[0].requestHeaders['last-event-id'], undefined, 'the first read starts at the beginning');
    assert.match(reads[1].requestHeaders['last-event-id'] ?? '', /^\d+$/, 'the second read resumes from the cursor');
    assert.equal(reads[0].responseHeaders['x-stream-version'], 'v2');

    // The model got the whole conversation on turn 2, though the client sent only u2.
    assert.equal(ctx.mock.requests.length, 2);
    assert.deepEqual(history(ctx.mock.requests[1]), [
      ['user', 'First question'],
      ['assistant', DELTAS.join('')],
      ['user', 'Second question'],
    ]);

    // The persisted history is what the client folded.
    const { publicAccessToken } = transport.getSession(chatId);
    const persisted = await getMessages(ctx.server, chatId, publicAccessToken);
    assertSameMessages(persisted, [u1, turn1.message, u2, turn2.message]);
  });
});
