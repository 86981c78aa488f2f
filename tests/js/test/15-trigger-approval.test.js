// Tool approvals through the stock TriggerChatTransport (server started with
// CHATFN_APPROVAL_TOOLS=roll_dice). The reply ends with a `tool-approval-request`; the client
// answers as useChat's `addToolApprovalResponse` does (the assistant message, its tool part set to
// `approval-responded`, sent with trigger submit-message; the transport slims it to the answer),
// and the continuation extends the same assistant message.

import assert from 'node:assert/strict';
import { e2eSuite } from '../support/harness.js';
import { contentText } from '../support/mock-openai.js';
import { getMessages, newChatId } from '../support/server.js';
import { assertSameMessages, assertWellFormedReply, sendTurn, textOf, userMessage } from '../support/stream.js';
import { describeExchanges, makeTriggerTransport, tapFetch, triggerServerActions } from '../support/trigger.js';

const CALL_ID = 'call_dice_approval';
const ARGS = ['{"sides"', ': 6, "count": 2}'];

/** The mock model: asks for roll_dice, then reports what the tool message said. */
function diceModel(req) {
  const last = req.messages.at(-1);
  if (last?.role === 'tool') {
    const content = contentText(last.content);
    let result;
    try {
      result = JSON.parse(content);
    } catch {
      result = undefined;
    }
    if (result && Array.isArray(result.rolls)) return { text: ['You rolled ', `${result.total}.`] };
    return { text: ['Okay, ', 'no dice.'] };
  }
  return { toolCalls: [{ id: CALL_ID, name: 'roll_dice', args: ARGS }] };
}

/** What `addToolApprovalResponse({ id, approved, reason })` makes of the assistant message. */
function answerApproval(message, approvalId, approved, reason) {
  return {
    ...message,
    parts: message.parts.map((part) => (part.state === 'approval-requested' && part.approval?.id === approvalId
      ? { ...part, state: 'approval-responded', approval: { ...part.approval, id: approvalId, approved, reason } }
      : part)),
  };
}

e2eSuite('trigger: tool approval', (ctx, e2e) => {
  /** Turn 1: the model calls roll_dice, and the reply asks for approval. */
  async function requestApproval(transport, chatId, u1) {
    ctx.mock.handle(diceModel);
    const turn = await sendTurn(transport, { chatId, messages: [u1] });
    assertWellFormedReply(turn.chunks);
    const types = turn.chunks.map((c) => c.type);
    const request = turn.chunks.find((c) => c.type === 'tool-approval-request');
    assert.ok(request, `no tool-approval-request chunk: ${types.join(', ')}`);
    assert.equal(request.toolCallId, CALL_ID);
    assert.ok(!types.includes('tool-output-available'), 'the tool ran before its approval');
    assert.equal(turn.chunks.at(-1).type, 'finish');
    assert.equal(turn.chunks.at(-1).finishReason, 'tool-calls');
    assert.equal(ctx.mock.requests.length, 1, 'the model is not called again before the answer');

    const tool = turn.message.parts.find((p) => p.type === 'tool-roll_dice');
    assert.ok(tool, `no tool-roll_dice part: ${JSON.stringify(turn.message.parts)}`);
    assert.equal(tool.state, 'approval-requested');
    assert.deepEqual(tool.input, { sides: 6, count: 2 });
    assert.equal(tool.approval?.id, request.approvalId);
    assert.equal(transport.getSession(chatId).isStreaming, false, 'the turn completed while waiting');
    return { turn, approvalId: request.approvalId };
  }

  e2e('an approved call runs, and the model follows up in the same assistant message', async () => {
    const actions = triggerServerActions(ctx.server);
    const { transport } = makeTriggerTransport(ctx.server, actions);
    const chatId = newChatId('trigger-approve');
    const u1 = userMessage('Roll two dice');
    const { turn, approvalId } = await requestApproval(transport, chatId, u1);
    const answered = answerApproval(turn.message, approvalId, true);
    // The server signs its approval requests; the stock client sends the signature back.
    const signature = turn.message.parts.find((p) => p.type === 'tool-roll_dice')?.approval?.signature;
    assert.match(signature ?? '', /^[A-Za-z0-9_-]{43}$/, 'an HMAC-SHA256, base64url');

    const tap = tapFetch();
    let next;
    try {
      next = await sendTurn(transport, {
        chatId,
        messages: [u1, answered],
        messageId: answered.id,
        message: structuredClone(answered), // the fold extends (and mutates) its seed
      });
    } finally {
      tap.restore();
    }

    // The transport sent only the answer, slimmed.
    const appends = tap.to('/in/append', 'POST');
    assert.equal(appends.length, 1, describeExchanges(tap.exchanges));
    assert.deepEqual(JSON.parse(appends[0].requestBody), {
      kind: 'message',
      payload: {
        message: {
          id: answered.id,
          role: 'assistant',
          parts: [{ type: 'tool-roll_dice', toolCallId: CALL_ID, state: 'approval-responded', approval: { id: approvalId, approved: true, signature } }],
        },
        chatId,
        trigger: 'submit-message',
        messageId: answered.id,
      },
    });

    // The continuation: same message, the tool's output, then the model's text.
    assertWellFormedReply(next.chunks, { continues: answered });
    assert.equal(next.chunks[0].type, 'start');
    assert.equal(next.chunks[0].messageId, turn.message.id, 'the continuation extends the same assistant message');
    const output = next.chunks.find((c) => c.type === 'tool-output-available');
    assert.ok(output, `no tool-output-available: ${next.chunks.map((c) => c.type).join(', ')}`);
    assert.equal(output.toolCallId, CALL_ID);
    assert.equal(output.output.rolls.length, 2);
    for (const roll of output.output.rolls) assert.ok(Number.isInteger(roll) && roll >= 1 && roll <= 6, `roll ${roll}`);

    const message = next.message;
    assert.equal(message.id, turn.message.id);
    const tool = message.parts.find((p) => p.type === 'tool-roll_dice');
    assert.equal(tool.state, 'output-available');
    assert.deepEqual(tool.output, output.output);
    assert.equal(tool.approval?.approved, true);
    assert.equal(textOf(message), `You rolled ${output.output.total}.`);
    assert.ok(message.parts.indexOf(tool) < message.parts.findIndex((p) => p.type === 'text'), 'the text follows the tool');

    // The model got the call and the tool's result.
    assert.equal(ctx.mock.requests.length, 2);
    const followUp = ctx.mock.requests[1].messages;
    assert.equal(followUp.at(-1).role, 'tool');
    assert.equal(followUp.at(-1).tool_call_id, CALL_ID);
    assert.deepEqual(JSON.parse(contentText(followUp.at(-1).content)), output.output);

    // One user message and one assistant message, as folded.
    const persisted = await getMessages(ctx.server, chatId, transport.getSession(chatId).publicAccessToken);
    assertSameMessages(persisted, [u1, message]);
    assert.equal(persisted[1].parts.find((p) => p.type === 'tool-roll_dice').approval?.approved, true);
  });

  e2e('a denied call never runs, and the model is told', async () => {
    const actions = triggerServerActions(ctx.server);
    const { transport } = makeTriggerTransport(ctx.server, actions);
    const chatId = newChatId('trigger-deny');
    const u1 = userMessage('Roll two dice');
    const { turn, approvalId } = await requestApproval(transport, chatId, u1);
    const answered = answerApproval(turn.message, approvalId, false, 'not now');

    const next = await sendTurn(transport, { chatId, messages: [u1, answered], messageId: answered.id, message: structuredClone(answered) });
    assertWellFormedReply(next.chunks, { continues: answered });
    const types = next.chunks.map((c) => c.type);
    assert.equal(next.chunks[0].messageId, turn.message.id);
    assert.ok(types.includes('tool-output-denied'), `no tool-output-denied: ${types.join(', ')}`);
    assert.ok(!types.includes('tool-output-available'), 'a denied tool ran');
    assert.equal(next.chunks.find((c) => c.type === 'tool-output-denied').toolCallId, CALL_ID);
    const tool = next.message.parts.find((p) => p.type === 'tool-roll_dice');
    assert.equal(tool.state, 'output-denied');
    assert.equal(textOf(next.message), 'Okay, no dice.');

    // The model was told about the denial in the tool result.
    assert.equal(ctx.mock.requests.length, 2);
    const toolMessage = ctx.mock.requests[1].messages.at(-1);
    assert.equal(toolMessage.role, 'tool');
    assert.equal(toolMessage.tool_call_id, CALL_ID);
    assert.match(contentText(toolMessage.content), /denied/i);
    assert.match(contentText(toolMessage.content), /not now/, 'the model gets the reason');

    const persisted = await getMessages(ctx.server, chatId, transport.getSession(chatId).publicAccessToken);
    assertSameMessages(persisted, [u1, next.message]);
    const stored = persisted[1].parts.find((p) => p.type === 'tool-roll_dice');
    assert.equal(stored.state, 'output-denied');
    assert.equal(stored.approval?.approved, false);
    assert.equal(stored.output, undefined, 'a denied call has no output');
  });
}, { env: { CHATFN_APPROVAL_TOOLS: 'roll_dice' } });
