// Two turns through DefaultChatTransport: replies stream, history is kept server-side and reaches
// the model, and GET /messages returns what the client folded.

import assert from 'node:assert/strict';
import { validateUIMessages } from 'ai';
import { e2eSuite } from '../support/harness.js';
import { contentText, lastMessage } from '../support/mock-openai.js';
import { getMessages } from '../support/server.js';
import { assertSameMessages, assertWellFormedReply, sendTurn, textOf, userMessage } from '../support/stream.js';

const FIRST_REPLY = ['Hi! ', 'I am ', 'the mock ', 'model.'];
const SECOND_REPLY = ['You said ', 'hello ', 'first.'];

/** The OpenAI messages without system prompts, as `[role, text]` pairs. */
const conversation = (messages) => messages.filter((m) => m.role !== 'system' && m.role !== 'developer').map((m) => [m.role, contentText(m.content)]);

e2eSuite('two-turn conversation', (ctx, e2e) => {
  e2e('replies stream, history reaches the model on turn 2, /messages equals the folded messages', async () => {
    const { chatId, token, transport } = await ctx.newChat('two-turns');
    ctx.mock.handle((req) => {
      const user = contentText(lastMessage(req.messages, 'user')?.content);
      if (user === 'Hello there') return { text: FIRST_REPLY, delayMs: 10 };
      if (user === 'What did I say first?') return { text: SECOND_REPLY, delayMs: 10 };
      throw new Error(`unexpected last user message: ${JSON.stringify(user)}`);
    });

    // Turn 1.
    const u1 = userMessage('Hello there');
    const turn1 = await sendTurn(transport, { chatId, messages: [u1] });
    assertWellFormedReply(turn1.chunks);
    const a1 = turn1.message;
    assert.equal(a1.role, 'assistant');
    assert.ok(a1.id, 'the assistant message has an id (from the start chunk)');
    assert.equal(textOf(a1), FIRST_REPLY.join(''));
    assert.ok(turn1.chunks.filter((c) => c.type === 'text-delta').length >= 2, 'the reply came in several text-delta chunks');

    const firstRequest = ctx.mock.requests[0];
    assert.equal(ctx.mock.requests.length, 1, 'one model call for a plain text reply');
    assert.equal(firstRequest.body.model, 'mock-model', 'CHATFN_MODEL reaches the provider');
    assert.equal(firstRequest.body.stream, true, 'the model is called in streaming mode');
    assert.equal(firstRequest.headers.authorization, 'Bearer test-key', 'CHATFN_MODEL_API_KEY reaches the provider');
    const offered = [...firstRequest.toolNames].sort();
    if (process.env.CHATFN_E2E_MCP_PORTS) {
      // scripts/lambda-e2e.sh configures the functions with the MCP test's servers: an instance
      // that ran that test may still offer their tools from its per-process cache.
      for (const name of ['current_time', 'roll_dice']) assert.ok(offered.includes(name), `${name} not offered: ${offered}`);
    } else {
      assert.deepEqual(offered, ['current_time', 'roll_dice'], 'the agent offers its two tools');
    }
    assert.deepEqual(conversation(firstRequest.messages), [['user', 'Hello there']]);

    // Turn 2: the client sends the full history, as useChat does.
    const u2 = userMessage('What did I say first?');
    const turn2 = await sendTurn(transport, { chatId, messages: [u1, a1, u2] });
    assertWellFormedReply(turn2.chunks);
    const a2 = turn2.message;
    assert.equal(textOf(a2), SECOND_REPLY.join(''));
    assert.notEqual(a2.id, a1.id, 'a new user message gets a new assistant message');

    assert.equal(ctx.mock.requests.length, 2);
    assert.deepEqual(
      conversation(ctx.mock.requests[1].messages),
      [
        ['user', 'Hello there'],
        ['assistant', FIRST_REPLY.join('')],
        ['user', 'What did I say first?'],
      ],
      'turn 2 sends the first turn (user + assistant) to the model',
    );

    // The persisted history is what the client built.
    const persisted = await getMessages(ctx.server, chatId, token);
    await validateUIMessages({ messages: persisted });
    assertSameMessages(persisted, [u1, a1, u2, a2]);
  });
});
