// Two readers of one chat: while a reply streams to the transport, a second raw `GET .../out`
// from the same cursor, and a second transport's reconnect, see the same records.

import assert from 'node:assert/strict';
import { e2eSuite } from '../support/harness.js';
import { newChatId } from '../support/server.js';
import { assertWellFormedReply, readChunks, sendTurn, textOf, userMessage } from '../support/stream.js';
import {
  dataSequence, describeExchanges, describeRecords, makeTriggerTransport, parseSseEvents, readOut, recordsOf, tapFetch,
  triggerServerActions, turnCompletes,
} from '../support/trigger.js';

const DELTAS = Array.from({ length: 10 }, (_, i) => `r${i} `);

e2eSuite('trigger: two readers', (ctx, e2e) => {
  e2e('a raw reader and a second transport from the same cursor see the transport\'s records', async () => {
    const actions = triggerServerActions(ctx.server);
    const chatId = newChatId('trigger-readers');

    // A first turn, so the second one reads from a cursor.
    const { transport } = makeTriggerTransport(ctx.server, actions);
    ctx.mock.handle(() => ({ text: 'Warm-up.' }));
    const u1 = userMessage('Warm up');
    const turn1 = await sendTurn(transport, { chatId, messages: [u1] });
    assertWellFormedReply(turn1.chunks);
    const cursor = transport.getSession(chatId).lastEventId;
    const token = transport.getSession(chatId).publicAccessToken;

    ctx.mock.handle(() => ({ text: DELTAS, delayMs: 60 }));
    const tap = tapFetch();
    let main;
    let raw;
    let other;
    try {
      let started;
      const firstChunk = new Promise((resolve) => {
        started = resolve;
      });
      const mainTurn = sendTurn(transport, {
        chatId,
        messages: [u1, turn1.message, userMessage('Stream slowly')],
        onChunk: (chunk) => {
          if (chunk.type === 'text-delta') started();
        },
      });
      await Promise.race([firstChunk, mainTurn]);
      // The reply is streaming; join it from the same cursor, twice.
      const otherTransport = makeTriggerTransport(ctx.server, actions, {
        sessions: { [chatId]: { publicAccessToken: token, lastEventId: cursor, isStreaming: true } },
      }).transport;
      [main, raw, other] = await Promise.all([
        mainTurn,
        readOut(ctx.server, chatId, token, { lastEventId: cursor }),
        otherTransport.reconnectToStream({ chatId }).then((stream) => {
          assert.ok(stream, 'the second transport found nothing to resume');
          return readChunks(stream, { label: 'second transport' });
        }),
      ]);
    } finally {
      tap.restore();
    }
    assertWellFormedReply(main.chunks);
    assert.equal(textOf(main.message), DELTAS.join(''));

    // The records the main transport read, from its own .out response.
    const mainReads = tap.to('/out', 'GET').filter((e) => e.requestHeaders['x-peek-settled'] === undefined);
    await Promise.all(mainReads.map((e) => e.done));
    const mainRead = mainReads.find((e) => e.requestHeaders['last-event-id'] === cursor && e.text.includes('turn-complete'));
    assert.ok(mainRead, describeExchanges(tap.exchanges));
    const seen = recordsOf(parseSseEvents(mainRead.text));
    const upToBoundary = seen.slice(0, seen.findIndex((r) => r.control === 'turn-complete') + 1);

    // The raw reader: the same data records (seq_num and chunk), the same boundary.
    assert.equal(raw.status, 200);
    assert.deepEqual(dataSequence(raw.records), dataSequence(upToBoundary), `raw: ${describeRecords(raw.records)}\ntransport: ${describeRecords(upToBoundary)}`);
    assert.equal(raw.records.at(-1).seq, upToBoundary.at(-1).seq);
    assert.equal(turnCompletes(raw.records).length, 1);
    assert.ok(raw.records.every((r, i) => i === 0 || r.seq > raw.records[i - 1].seq), 'seq_num increases');
    assert.ok(raw.records[0].seq > Number(cursor), 'the read resumed after the cursor');

    // The chunks both transports handed to the app, and the raw chunks, are one sequence.
    const rawChunks = dataSequence(raw.records).map(([, chunk]) => chunk);
    assert.deepEqual(main.chunks, rawChunks);
    assert.deepEqual(other.chunks, rawChunks);
    assert.deepEqual(other.message, main.message);
    assert.equal(ctx.mock.requests.length, 2, 'one model call per turn, however many readers');
  });
});
