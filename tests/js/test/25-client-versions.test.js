// The AI SDK wire with each major of the `ai` client still in use: 5.x and 6.x (pinned side by side
// as `ai-v5` / `ai-v6` npm aliases) and the current 7.x. Each major's own `DefaultChatTransport`
// parses and validates the chunks, and its own `readUIMessageStream` folds them: send (with the
// turn's usage as message metadata), tool parts, resume, stop and tool approvals. `ai` 5 has no
// approval chunks (they came with 6), so an approval tool is answered on 6 and 7 only; what 5 is
// sent for one is pinned down below.

import assert from 'node:assert/strict';
import * as aiV5 from 'ai-v5';
import * as aiV6 from 'ai-v6';
import * as aiV7 from 'ai';
import { e2eSuite } from '../support/harness.js';
import { contentText, lastMessage } from '../support/mock-openai.js';
import { createSession, getMessages, newChatId, stopChat } from '../support/server.js';
import { assertSameMessages, assertWellFormedReply, readChunks, sendTurn, textOf, userMessage, waitFor } from '../support/stream.js';

const MAJORS = [
  { major: 5, ai: aiV5, approvals: false },
  { major: 6, ai: aiV6, approvals: true },
  { major: 7, ai: aiV7, approvals: true },
];

const LONG = Array.from({ length: 20 }, (_, i) => `w${i} `);

/** The mock model: replies by the last user message; after a tool result, says what it got. */
function model(req) {
  const last = req.messages.at(-1);
  if (last?.role === 'tool') return { text: ['Tool said ', contentText(last.content).slice(0, 20)] };
  const user = contentText(lastMessage(req.messages, 'user')?.content);
  if (user === 'time') return { toolCalls: [{ id: 'call_time', name: 'current_time', args: ['{', '}'] }] };
  if (user === 'dice') return { toolCalls: [{ id: 'call_dice', name: 'roll_dice', args: ['{"sides"', ': 6, "count": 2}'] }] };
  if (user === 'long') return { text: LONG, delayMs: 80 };
  return { text: ['Hello ', 'from ', 'the mock.'], delayMs: 5, usage: { prompt_tokens: 120, completion_tokens: 4, prompt_tokens_details: { cached_tokens: 100 } } };
}

for (const { major, ai, approvals } of MAJORS) {
  e2eSuite(`ai ${major}.x client`, (ctx, e2e) => {
    const fold = { readUIMessageStream: ai.readUIMessageStream };

    async function newChat(prefix) {
      const chatId = newChatId(`v${major}-${prefix}`);
      const token = await createSession(ctx.server, chatId);
      const transport = new ai.DefaultChatTransport({ api: `${ctx.server.baseUrl}/api/chat`, headers: { Authorization: `Bearer ${token}` } });
      return { chatId, token, transport };
    }

    const turn = (transport, options) => sendTurn(transport, { ...fold, ...options });

    e2e('send: two turns stream, and the history is what the client folded', async () => {
      ctx.mock.handle(model);
      const { chatId, token, transport } = await newChat('send');
      const u1 = userMessage('hi');
      const first = await turn(transport, { chatId, messages: [u1] });
      assertWellFormedReply(first.chunks);
      assert.equal(textOf(first.message), 'Hello from the mock.');
      // The turn's usage, prompt cache included, reaches the client as message metadata.
      assert.deepEqual(first.message.metadata, {
        usage: { inputTokens: 120, outputTokens: 4, totalTokens: 124, reasoningTokens: 0, cacheReadTokens: 100, cacheWriteTokens: 0 },
      });
      const u2 = userMessage('again');
      const second = await turn(transport, { chatId, messages: [u1, first.message, u2] });
      assertWellFormedReply(second.chunks);
      const persisted = await getMessages(ctx.server, chatId, token);
      await ai.validateUIMessages({ messages: persisted });
      assertSameMessages(persisted, [u1, first.message, u2, second.message]);
    });

    e2e('tool parts: a server tool call folds into one message with two steps', async () => {
      ctx.mock.handle(model);
      const { chatId, token, transport } = await newChat('tool');
      const reply = await turn(transport, { chatId, messages: [userMessage('time')] });
      assertWellFormedReply(reply.chunks);
      const tool = reply.message.parts.find((p) => p.type === 'tool-current_time');
      assert.ok(tool, `no tool-current_time part: ${JSON.stringify(reply.message.parts)}`);
      assert.equal(tool.state, 'output-available');
      assert.deepEqual(tool.input, {});
      assert.equal(typeof tool.output?.unixMs, 'number');
      assert.equal(reply.message.parts.filter((p) => p.type === 'step-start').length, 2);
      assert.match(textOf(reply.message), /^Tool said /);
      const persisted = await getMessages(ctx.server, chatId, token);
      await ai.validateUIMessages({ messages: persisted });
      assertSameMessages(persisted.slice(1), [reply.message]);
    });

    e2e('resume: reconnectToStream replays a dropped reply and follows it live', async () => {
      ctx.mock.handle(model);
      const { chatId, transport } = await newChat('resume');
      const controller = new AbortController();
      const live = await turn(transport, {
        chatId,
        messages: [userMessage('long')],
        abortSignal: controller.signal,
        expectAbort: true,
        onChunk: (_chunk, _i, chunks) => {
          if (chunks.filter((c) => c.type === 'text-delta').length === 3) controller.abort();
        },
      });
      assert.ok(live.aborted, 'the POST was dropped mid-reply');
      const stream = await transport.reconnectToStream({ chatId });
      assert.ok(stream, 'reconnectToStream returned null while the reply was streaming');
      const replay = await readChunks(stream, { ...fold, label: `ai ${major} reconnectToStream` });
      assertWellFormedReply(replay.chunks);
      assert.deepEqual(replay.chunks.slice(0, live.chunks.length), live.chunks, 'what was seen is a prefix of the replay');
      assert.equal(textOf(replay.message), LONG.join(''));
      await waitFor(async () => {
        const idle = await transport.reconnectToStream({ chatId });
        if (idle === null) return true;
        await idle.cancel().catch(() => {});
        return false;
      }, { timeout: 10000, interval: 200, message: 'reconnectToStream to return null after the turn' });
    });

    e2e('stop: the reply ends with abort and keeps its partial text', async () => {
      ctx.mock.handle(model);
      const { chatId, token, transport } = await newChat('stop');
      let stopped;
      const reply = await turn(transport, {
        chatId,
        messages: [userMessage('long')],
        onChunk: (_chunk, _i, chunks) => {
          if (!stopped && chunks.filter((c) => c.type === 'text-delta').length === 3) stopped = stopChat(ctx.server, chatId, token);
        },
      });
      assert.equal((await stopped).status, 200);
      assertWellFormedReply(reply.chunks, { end: 'abort' });
      const partial = textOf(reply.message);
      assert.ok(partial.length > 0 && partial.length < LONG.join('').length, `partial reply: ${JSON.stringify(partial)}`);
      const persisted = await waitFor(async () => {
        const messages = await getMessages(ctx.server, chatId, token);
        return messages.length === 2 ? messages : false;
      }, { message: 'the partial reply to be persisted' });
      await ai.validateUIMessages({ messages: persisted });
      assert.equal(textOf(persisted[1]), partial);
    });

    if (approvals) {
      e2e('approvals: an approved call runs in the same assistant message', async () => {
        ctx.mock.handle(model);
        const { chatId, token, transport } = await newChat('approve');
        const u1 = userMessage('dice');
        const first = await turn(transport, { chatId, messages: [u1] });
        assertWellFormedReply(first.chunks);
        const request = first.chunks.find((c) => c.type === 'tool-approval-request');
        assert.ok(request, `no tool-approval-request: ${first.chunks.map((c) => c.type).join(', ')}`);
        const asked = first.message.parts.find((p) => p.type === 'tool-roll_dice');
        assert.equal(asked.state, 'approval-requested');
        assert.equal(asked.approval?.id, request.approvalId);

        // What `addToolApprovalResponse` makes of the message the client folded.
        const answered = {
          ...first.message,
          parts: first.message.parts.map((p) => (p === asked ? { ...p, state: 'approval-responded', approval: { ...p.approval, approved: true } } : p)),
        };
        const next = await turn(transport, { chatId, messages: [u1, answered], messageId: answered.id, message: structuredClone(answered) });
        assertWellFormedReply(next.chunks, { continues: answered });
        assert.equal(next.chunks[0].messageId, first.message.id);
        const tool = next.message.parts.find((p) => p.type === 'tool-roll_dice');
        assert.equal(tool.state, 'output-available');
        assert.equal(tool.output.rolls.length, 2);
        assert.match(textOf(next.message), /^Tool said /);
        const persisted = await getMessages(ctx.server, chatId, token);
        await ai.validateUIMessages({ messages: persisted });
        assertSameMessages(persisted, [u1, next.message]);
      });
    } else {
      e2e('approvals: ai 5 has no approval chunks, so it cannot read a reply that asks for one', async () => {
        ctx.mock.handle(model);
        const { chatId, transport } = await newChat('approve');
        await assert.rejects(turn(transport, { chatId, messages: [userMessage('dice')] }), /Type validation failed: Value: \{"type":"tool-approval-request"/);
      });
    }
  }, { env: { CHATFN_APPROVAL_TOOLS: 'roll_dice' } });
}
