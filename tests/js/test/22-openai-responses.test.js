// The stock agent with CHATFN_MODEL_PROVIDER=openai-responses, on each host: the Responses API's
// stream (as support/responses-stream.js builds it, on the recordings' shape) becomes reasoning
// and text parts for the stock clients, and the reasoning a model streamed goes back to it as the
// encrypted item it sent (nothing is stored at OpenAI: `store: false`), within a tool loop and in
// later turns. The mock refuses a follow-up that lacks it, as the real API does for reasoning
// models in a tool loop. On Lambda, scripts/lambda-e2e.sh runs this file against agent-turn
// instances started with the provider set; elsewhere the suite sets it.

import assert from 'node:assert/strict';
import { validateUIMessages } from 'ai';
import { e2eSuite } from '../support/harness.js';
import { getMessages } from '../support/server.js';
import { assertSameMessages, assertWellFormedReply, sendTurn, textOf, userMessage } from '../support/stream.js';

export const RESPONSES_ENV = { CHATFN_MODEL_PROVIDER: 'openai-responses', CHATFN_MODEL: 'gpt-5-mini' };

const reasoningOf = (message) => message.parts.filter((part) => part.type === 'reasoning').map((part) => part.text).join('');

/** The reasoning items of a Responses request's input, by their encrypted content. */
const sentReasoning = (request) =>
  request.input.filter((item) => item.type === 'reasoning').map((item) => item.encrypted_content);

/** What the API answers a follow-up that lacks a reasoning item it needs. */
const missingReasoning = (encrypted) => ({
  status: 400,
  errorBody: {
    error: {
      message: `the reasoning item (${encrypted}) that came with the function call is missing from input`,
      type: 'invalid_request_error',
      param: 'input',
      code: null,
    },
  },
});

e2eSuite('the openai-responses provider', (ctx, e2e) => {
  e2e('reasoning summaries stream as reasoning parts, the answer as text', async () => {
    const { chatId, token, transport } = await ctx.newChat('responses');
    ctx.mock.handle(() => ({
      reasoning: { summary: ['**Greeting**\n\n', 'The user said hi; ', 'answer briefly.'], encrypted: 'enc_greeting' },
      text: ['Hello ', 'there.'],
      delayMs: 5,
    }));
    const u1 = userMessage('hi');
    const turn = await sendTurn(transport, { chatId, messages: [u1] });
    assertWellFormedReply(turn.chunks);
    assert.equal(reasoningOf(turn.message), '**Greeting**\n\nThe user said hi; answer briefly.');
    assert.equal(textOf(turn.message), 'Hello there.');
    const types = turn.chunks.map((chunk) => chunk.type);
    assert.ok(types.indexOf('reasoning-delta') < types.indexOf('text-delta'), `reasoning before text: ${types.join(', ')}`);
    assert.ok(types.filter((type) => type === 'reasoning-delta').length >= 3, 'the summary streams in its fragments');

    const [request] = ctx.mock.requests;
    assert.match(request.path, /\/responses$/);
    assert.equal(request.body.stream, true);
    assert.equal(request.body.store, false, 'nothing is kept on the provider');
    assert.deepEqual(request.body.include, ['reasoning.encrypted_content']);
    assert.ok(request.body.reasoning?.summary, `summaries asked for: ${JSON.stringify(request.body.reasoning)}`);

    const stored = await getMessages(ctx.server, chatId, token);
    await validateUIMessages({ messages: stored });
    assertSameMessages(stored, [u1, turn.message]);
  });

  e2e('in a tool loop, the follow-up carries the encrypted reasoning item', async () => {
    const { chatId, transport } = await ctx.newChat('responses-tool');
    ctx.mock.handle((req) => {
      const output = req.input.find((item) => item.type === 'function_call_output');
      if (!output) {
        return {
          reasoning: { summary: 'Two dice, then add them.', encrypted: 'enc_loop' },
          toolCalls: [{ id: 'call_roll', name: 'roll_dice', args: ['{"sides": 6, ', '"count": 2}'] }],
          delayMs: 5,
        };
      }
      if (!sentReasoning(req).includes('enc_loop')) return missingReasoning('enc_loop');
      const { total } = JSON.parse(output.output);
      return { text: ['You rolled ', `${total}.`] };
    });
    const turn = await sendTurn(transport, { chatId, messages: [userMessage('roll two dice')] });
    assertWellFormedReply(turn.chunks);
    const tool = turn.message.parts.find((part) => part.type === 'tool-roll_dice');
    assert.equal(tool?.state, 'output-available', JSON.stringify(turn.message.parts));
    assert.deepEqual(tool.input, { sides: 6, count: 2 });
    assert.equal(textOf(turn.message), `You rolled ${tool.output.total}.`);
    assert.equal(ctx.mock.requests.length, 2);
    const [, followUp] = ctx.mock.requests;
    const items = followUp.input.map((item) => item.type);
    assert.ok(
      items.indexOf('reasoning') < items.indexOf('function_call') && items.indexOf('function_call') < items.indexOf('function_call_output'),
      `the reasoning item, the call and its output, in order: ${items.join(', ')}`,
    );
    assert.equal(followUp.input.find((item) => item.type === 'function_call').call_id, 'call_roll');
  });

  e2e('a later turn sends the earlier turns\' reasoning back', async () => {
    const { chatId, transport } = await ctx.newChat('responses-later');
    ctx.mock.handle((req) => (req.index === 0
      ? { reasoning: { summary: 'Remember 42.', encrypted: 'enc_first' }, text: 'Noted.' }
      : { reasoning: { summary: 'It was 42.', encrypted: 'enc_second' }, text: '42.' }));
    const u1 = userMessage('remember 42');
    const first = await sendTurn(transport, { chatId, messages: [u1] });
    assertWellFormedReply(first.chunks);
    const u2 = userMessage('what was it?');
    const second = await sendTurn(transport, { chatId, messages: [u1, first.message, u2] });
    assertWellFormedReply(second.chunks);
    assert.equal(textOf(second.message), '42.');
    assert.deepEqual(sentReasoning(ctx.mock.requests[1]), ['enc_first']);
  });
}, { env: RESPONSES_ENV });
