// Every chunk the server emits passes the `ai` package's own validation.
//
// All tests read replies through DefaultChatTransport (schema validation of every chunk) and
// readUIMessageStream (consistency of the chunk sequence), and `readChunks` turns any error of
// theirs into a test failure. The first suite proves that guarantee on a fixture server that
// sends bad streams; the second runs a reply with every chunk kind the agent produces.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { e2eSuite } from '../support/harness.js';
import { contentText } from '../support/mock-openai.js';
import { startSseFixture } from '../support/sse-fixture.js';
import { makeTransport } from '../support/server.js';
import { assertWellFormedReply, readChunks, sendTurn, textOf, userMessage } from '../support/stream.js';

const GOOD = [
  { type: 'start', messageId: 'm1' },
  { type: 'start-step' },
  { type: 'text-start', id: 't1' },
  { type: 'text-delta', id: 't1', delta: 'Hello' },
  { type: 'text-end', id: 't1' },
  { type: 'finish-step' },
  { type: 'finish', finishReason: 'stop' },
];

describe('harness self-check: bad streams fail the test', () => {
  let fixture;
  before(async () => {
    fixture = await startSseFixture();
  });
  after(async () => {
    await fixture?.close();
  });

  const read = () => sendTurn(makeTransport(fixture, 'token'), { chatId: 'c1', messages: [userMessage('hi')], timeout: 5000 });

  test('a valid stream is folded', { timeout: 10000 }, async () => {
    fixture.serve(GOOD);
    const turn = await read();
    assertWellFormedReply(turn.chunks);
    assert.deepEqual(turn.chunks, GOOD);
    assert.equal(turn.message.id, 'm1');
    assert.equal(textOf(turn.message), 'Hello');
  });

  const badStreams = {
    'an unknown chunk type': [GOOD[0], { type: 'text-chunk', id: 't1', delta: 'x' }],
    'a chunk missing a required field': [GOOD[0], GOOD[1], GOOD[2], { type: 'text-delta', id: 't1' }],
    'a field of the wrong type': [GOOD[0], { type: 'finish', finishReason: 42 }],
    'data that is not JSON': [GOOD[0], '{"type":"text-start",'],
    'a text-delta without its text-start': [GOOD[0], GOOD[1], { type: 'text-delta', id: 'nope', delta: 'x' }],
    'a tool output for an unknown call': [GOOD[0], GOOD[1], { type: 'tool-output-available', toolCallId: 'nope', output: {} }],
    'an error chunk': [GOOD[0], { type: 'error', errorText: 'boom' }, GOOD[6]],
  };
  for (const [name, events] of Object.entries(badStreams)) {
    test(`${name} rejects`, { timeout: 10000 }, async () => {
      fixture.serve(events);
      await assert.rejects(read(), /the ai package reported a stream error/);
    });
  }

  test('a chunk sequence the schema accepts but that is malformed fails assertWellFormedReply', { timeout: 10000 }, async () => {
    fixture.serve([GOOD[0], GOOD[1], GOOD[2], GOOD[3], GOOD[6]]); // text part and step never closed
    const turn = await read();
    assert.throws(() => assertWellFormedReply(turn.chunks), /open/);
  });

  test('dropping the connection is an error unless expected', { timeout: 10000 }, async () => {
    fixture.serve(GOOD, { delay: 100 });
    const transport = makeTransport(fixture, 'token');
    const dropAfterStart = async (expectAbort) => {
      const controller = new AbortController();
      return sendTurn(transport, {
        chatId: 'c1',
        messages: [userMessage('hi')],
        abortSignal: controller.signal,
        expectAbort,
        timeout: 5000,
        onChunk: (chunk) => {
          if (chunk.type === 'text-start') controller.abort();
        },
      });
    };
    await assert.rejects(dropAfterStart(false), /stream error/);
    const expected = await dropAfterStart(true);
    assert.equal(expected.aborted, true);
    assert.deepEqual(expected.chunks.map((c) => c.type).slice(0, 3), ['start', 'start-step', 'text-start']);
  });
});

e2eSuite('chatfn replies pass the ai package validation', (ctx, e2e) => {
  e2e('a two-step reply with parallel tool calls and text', async () => {
    const { chatId, token } = await ctx.newChat('validation');
    let responseHeaders;
    const transport = makeTransport(ctx.server, token, {
      fetch: async (url, init) => {
        const response = await fetch(url, init);
        responseHeaders = response.headers;
        return response;
      },
    });
    ctx.mock.handle((req) => {
      if (req.messages.at(-1)?.role === 'tool') {
        const results = req.messages.filter((m) => m.role === 'tool').map((m) => JSON.parse(contentText(m.content)));
        return { text: ['Rolled ', `${results.find((r) => 'total' in r)?.total} `, 'at ', 'some time.'] };
      }
      return {
        text: ['Let me ', 'check.'],
        toolCalls: [
          { id: 'call_a', name: 'roll_dice', args: ['{"sides"', ':20}'] },
          { id: 'call_b', name: 'current_time', args: '{}' },
        ],
      };
    });

    const turn = await sendTurn(transport, { chatId, messages: [userMessage('Roll a d20 and tell me the time')] });
    assertWellFormedReply(turn.chunks);
    assert.match(responseHeaders.get('content-type') ?? '', /^text\/event-stream/);
    assert.equal(responseHeaders.get('x-vercel-ai-ui-message-stream'), 'v1');

    const types = new Set(turn.chunks.map((c) => c.type));
    for (const type of ['start', 'start-step', 'text-start', 'text-delta', 'text-end', 'tool-input-available', 'tool-output-available', 'finish-step', 'finish']) {
      assert.ok(types.has(type), `no ${type} chunk in: ${[...types].join(', ')}`);
    }
    const dice = turn.message.parts.find((p) => p.type === 'tool-roll_dice');
    const time = turn.message.parts.find((p) => p.type === 'tool-current_time');
    assert.equal(dice?.state, 'output-available');
    assert.equal(time?.state, 'output-available');
    assert.deepEqual(dice.input, { sides: 20 });
    assert.ok(dice.output.rolls.length >= 1);
    for (const roll of dice.output.rolls) assert.ok(Number.isInteger(roll) && roll >= 1 && roll <= 20, `roll ${roll}`);
    assert.equal(textOf(turn.message), `Let me check.Rolled ${dice.output.total} at some time.`);

    // The follow-up request answered both calls.
    const followUp = ctx.mock.requests[1].messages;
    const answered = followUp.filter((m) => m.role === 'tool').map((m) => m.tool_call_id).sort();
    const called = followUp.findLast((m) => m.role === 'assistant').tool_calls.map((c) => c.id).sort();
    assert.deepEqual(answered, called);
    assert.equal(called.length, 2);
  });

  e2e('the finish chunk reports the finish reason', async () => {
    const { chatId, transport } = await ctx.newChat('finish-reason');
    ctx.mock.handle(() => ({ text: 'Cut', finishReason: 'length' }));
    const turn = await sendTurn(transport, { chatId, messages: [userMessage('Write forever')] });
    assertWellFormedReply(turn.chunks);
    assert.equal(turn.chunks.at(-1).finishReason, 'length');
  });
});

// Also re-read the other files' scenarios through readChunks: they all use it.
test('every e2e file reads replies through readChunks', async () => {
  const { readdir, readFile } = await import('node:fs/promises');
  const dir = new URL('.', import.meta.url);
  for (const file of await readdir(dir)) {
    if (!file.endsWith('.test.js')) continue;
    const source = await readFile(new URL(file, dir), 'utf8');
    if (/sendMessages\(|reconnectToStream\(/.test(source)) {
      assert.ok(!/getReader\(\)|\.read\(\)/.test(source), `${file} reads a chunk stream by hand instead of through readChunks`);
    }
  }
});
