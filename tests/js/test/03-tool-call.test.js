// A server-side tool call: the model asks for roll_dice (arguments split across chunks), the
// server runs it, sends the result back to the model, and the model answers with text.

import assert from 'node:assert/strict';
import { validateUIMessages } from 'ai';
import { e2eSuite } from '../support/harness.js';
import { contentText } from '../support/mock-openai.js';
import { getMessages } from '../support/server.js';
import { assertSameMessages, assertWellFormedReply, sendTurn, textOf, userMessage } from '../support/stream.js';

const CALL_ID = 'call_dice_1';
const ARG_FRAGMENTS = ['{"si', 'des": ', '6, "co', 'unt"', ': 2}'];

e2eSuite('server tool call', (ctx, e2e) => {
  e2e('roll_dice runs on the server and the model gets its result', async () => {
    const { chatId, token, transport } = await ctx.newChat('tool');
    ctx.mock.handle((req) => {
      const last = req.messages.at(-1);
      if (last?.role === 'tool') {
        const result = JSON.parse(contentText(last.content));
        return { text: ['You rolled ', `a total of ${result.total}.`], delayMs: 10 };
      }
      return { toolCalls: [{ id: CALL_ID, name: 'roll_dice', args: ARG_FRAGMENTS }], delayMs: 10 };
    });

    const turn = await sendTurn(transport, { chatId, messages: [userMessage('Roll two six-sided dice')] });
    assertWellFormedReply(turn.chunks);
    const message = turn.message;

    // The folded message: a tool-roll_dice part with its output, then the text.
    const toolIndex = message.parts.findIndex((p) => p.type === 'tool-roll_dice');
    assert.ok(toolIndex >= 0, `no tool-roll_dice part in ${JSON.stringify(message.parts)}`);
    const tool = message.parts[toolIndex];
    assert.equal(tool.state, 'output-available');
    assert.deepEqual(tool.input, { sides: 6, count: 2 });
    assert.ok(Array.isArray(tool.output?.rolls), `output.rolls: ${JSON.stringify(tool.output)}`);
    assert.equal(tool.output.rolls.length, 2);
    for (const roll of tool.output.rolls) assert.ok(Number.isInteger(roll) && roll >= 1 && roll <= 6, `roll ${roll}`);
    assert.equal(tool.output.total, tool.output.rolls[0] + tool.output.rolls[1]);

    const textIndex = message.parts.findIndex((p) => p.type === 'text');
    assert.ok(textIndex > toolIndex, 'the text comes after the tool part');
    assert.equal(textOf(message), `You rolled a total of ${tool.output.total}.`);
    assert.equal(message.parts.filter((p) => p.type === 'step-start').length, 2, 'two model calls → two steps in one message');

    // Streamed tool input, if forwarded, adds up to the arguments.
    const inputDeltas = turn.chunks.filter((c) => c.type === 'tool-input-delta').map((c) => c.inputTextDelta);
    if (inputDeltas.length) assert.deepEqual(JSON.parse(inputDeltas.join('')), { sides: 6, count: 2 });

    // The follow-up model request carried the call and its result.
    assert.equal(ctx.mock.requests.length, 2, 'one model call for the tool, one for the answer');
    const followUp = ctx.mock.requests[1].messages;
    const assistant = followUp.findLast((m) => m.role === 'assistant');
    assert.ok(assistant?.tool_calls?.length === 1, `the follow-up lacks the assistant tool call: ${JSON.stringify(followUp)}`);
    const call = assistant.tool_calls[0];
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'roll_dice');
    assert.deepEqual(JSON.parse(call.function.arguments), { sides: 6, count: 2 });
    const toolMessage = followUp.at(-1);
    assert.equal(toolMessage.role, 'tool', 'the follow-up ends with the tool result');
    assert.equal(toolMessage.tool_call_id, call.id, 'the tool result answers the call');
    assert.deepEqual(JSON.parse(contentText(toolMessage.content)), tool.output, 'the model saw the output the client saw');

    const persisted = await getMessages(ctx.server, chatId, token);
    await validateUIMessages({ messages: persisted });
    assert.equal(persisted.length, 2);
    assertSameMessages(persisted.slice(1), [message]);
  });

  e2e('current_time returns the server time', async () => {
    const { chatId, transport } = await ctx.newChat('time');
    ctx.mock.handle((req) => (req.messages.at(-1)?.role === 'tool'
      ? { text: 'It is now.' }
      : { toolCalls: [{ id: 'call_time_1', name: 'current_time', args: ['{', '}'] }] }));

    const before = Date.now();
    const turn = await sendTurn(transport, { chatId, messages: [userMessage('What time is it?')] });
    const after = Date.now();
    assertWellFormedReply(turn.chunks);
    const tool = turn.message.parts.find((p) => p.type === 'tool-current_time');
    assert.ok(tool, `no tool-current_time part in ${JSON.stringify(turn.message.parts)}`);
    assert.equal(tool.state, 'output-available');
    assert.deepEqual(tool.input, {});
    assert.equal(typeof tool.output?.unixMs, 'number');
    assert.ok(tool.output.unixMs >= before - 5000 && tool.output.unixMs <= after + 5000, `unixMs ${tool.output.unixMs}`);
    assert.ok(Math.abs(Date.parse(tool.output.iso) - tool.output.unixMs) < 1000, `iso ${tool.output.iso} disagrees with unixMs`);
    assert.equal(textOf(turn.message), 'It is now.');
  });
});
