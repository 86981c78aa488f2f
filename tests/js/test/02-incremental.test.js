// Streaming is incremental: text deltas reach the client as the model produces them.
// (The only timing-based assertion in the suite.)

import assert from 'node:assert/strict';
import { e2eSuite } from '../support/harness.js';
import { assertWellFormedReply, sendTurn, textOf, userMessage } from '../support/stream.js';

const DELTAS = Array.from({ length: 10 }, (_, i) => `part${i} `);
const DELAY_MS = 80;

e2eSuite('incremental streaming', (ctx, e2e) => {
  e2e('text deltas arrive spread out, not all at once', async () => {
    const { chatId, transport } = await ctx.newChat('incremental');
    ctx.mock.handle(() => ({ text: DELTAS, delayMs: DELAY_MS }));

    const turn = await sendTurn(transport, { chatId, messages: [userMessage('Count slowly')] });
    assertWellFormedReply(turn.chunks);
    assert.equal(textOf(turn.message), DELTAS.join(''));

    const deltaTimes = turn.chunks.flatMap((c, i) => (c.type === 'text-delta' ? [turn.arrivals[i]] : []));
    assert.ok(deltaTimes.length >= 2, `expected several text-delta chunks, got ${deltaTimes.length}`);
    const spread = deltaTimes.at(-1) - deltaTimes[0];
    // The model needs 9 × 80 = 720 ms from its first delta to its last.
    assert.ok(spread > 400, `first and last text-delta arrived only ${spread.toFixed(0)} ms apart: the reply was buffered`);

    // Causality: the client read the first delta before the model had finished its reply.
    const modelFinishedAt = ctx.mock.requests[0].finishedAt;
    assert.ok(
      deltaTimes[0] < modelFinishedAt,
      `the first text-delta reached the client ${(deltaTimes[0] - modelFinishedAt).toFixed(0)} ms after the model finished`,
    );
  });
});
