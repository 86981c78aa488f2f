// Usage limits, actions and close, with the stock `AgentChat` and `TriggerChatTransport`:
// - a chat past CHATFN_MAX_TURNS_PER_MINUTE gets a 429 `rate_limited` with Retry-After, and
//   nothing of the refused message is stored; another chat is not affected;
// - a chat past CHATFN_MAX_OUTPUT_TOKENS_PER_DAY gets a 429 `budget_exceeded`;
// - `sendAction` runs the stock agent's action handler (`{type: "undo"}` drops the last
//   exchange; any other action changes nothing): the stream ends with the turn-complete alone;
// - `AgentChat.close()` writes nothing, and the next message's reply arrives;
// - `sessions.close` mid-reply stops the reply, wherever the turn runs (on Lambda the close
//   lands on session-start while the turn runs in agent-turn).
//
// The limits are read when the server starts: scripts/lambda-e2e.sh starts agent-turn with the
// same values (two instances, which must share one count) for this file.

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentChat } from '@trigger.dev/sdk/chat';
import { e2eSuite } from '../support/harness.js';
import { contentText, lastMessage } from '../support/mock-openai.js';
import { getMessages, newChatId, request } from '../support/server.js';
import { readChunks, sendTurn, textOf, userMessage, waitFor } from '../support/stream.js';
import {
  describeExchanges, makeTriggerTransport, rawFetch, readWholeLog, sessionUrl, tapFetch, triggerServerActions, turnCompletes,
} from '../support/trigger.js';

export const LIMITS_ENV = {
  CHATFN_MAX_TURNS_PER_MINUTE: '2',
  CHATFN_MAX_OUTPUT_TOKENS_PER_DAY: '300',
};

const DELTAS = Array.from({ length: 40 }, (_, i) => `word${i} `);
const FULL = DELTAS.join('');

/** Waits for the next minute when this one is nearly over: the turn counts are per minute. */
async function awayFromTheMinuteEnd(needMs = 15_000) {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < needMs) await sleep(left + 250);
}

/** The chunks of an AgentChat stream, to its end. */
async function chunksOf(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

e2eSuite('usage limits, actions and close', (ctx, e2e) => {
  let actions;
  const setup = () => {
    actions ??= triggerServerActions(ctx.server);
    return actions;
  };
  const agentChat = (chatId) => new AgentChat({ agent: 'chat', id: chatId });
  const history = async (chatId) => getMessages(ctx.server, chatId, await setup().mint(chatId));

  e2e('a third turn in a minute is refused with 429 rate_limited; nothing of it is stored; another chat goes on', async () => {
    setup();
    await awayFromTheMinuteEnd();
    ctx.mock.handle((req) => ({ text: `Reply ${req.index}.` }));
    const chatId = newChatId('limit-turns');
    const chat = agentChat(chatId);
    assert.match(await (await chat.sendMessage('one')).text(), /^Reply \d+\.$/);
    assert.match(await (await chat.sendMessage('two')).text(), /^Reply \d+\.$/);
    const before = ctx.mock.requests.length;

    const tap = tapFetch();
    try {
      await assert.rejects(chat.sendMessage('three'), (error) => error.status === 429 && /rate_limited/.test(error.message));
    } finally {
      tap.restore();
    }
    const refused = tap.to('/in/append', 'POST');
    assert.equal(refused.length, 1, describeExchanges(tap.exchanges));
    await refused[0].done;
    assert.equal(refused[0].status, 429);
    assert.equal(refused[0].json.code, 'rate_limited');
    const retryAfter = Number(refused[0].responseHeaders['retry-after']);
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${retryAfter}`);
    assert.equal(refused[0].json.retryAfter, retryAfter);

    // Nothing of the refused message: no input, no model call, no message.
    const token = await setup().mint(chatId);
    const inputs = await rawFetch(sessionUrl(ctx.server, chatId, 'in/records'), { token });
    assert.equal(inputs.status, 200, inputs.text);
    assert.equal(inputs.json.records.length, 2, inputs.text);
    const messages = await history(chatId);
    assert.deepEqual(messages.map((m) => m.role), ['user', 'assistant', 'user', 'assistant']);
    assert.ok(!messages.some((m) => textOf(m) === 'three'));
    await sleep(300);
    assert.equal(ctx.mock.requests.length, before, 'the model was not called');

    // Another chat has a count of its own.
    const other = agentChat(newChatId('limit-other'));
    assert.match(await (await other.sendMessage('hello')).text(), /^Reply \d+\.$/);
  });

  e2e('on the AI SDK wire too: a third POST /api/chat in a minute is a 429 and records nothing', async () => {
    await awayFromTheMinuteEnd();
    ctx.mock.handle((req) => ({ text: `Reply ${req.index}.` }));
    const { chatId, token, transport } = await ctx.newChat('limit-ai-sdk');
    const u1 = userMessage('one');
    const t1 = await sendTurn(transport, { chatId, messages: [u1] });
    const u2 = userMessage('two');
    const t2 = await sendTurn(transport, { chatId, messages: [u1, t1.message, u2] });
    const u3 = userMessage('three');
    await assert.rejects(
      transport.sendMessages({ chatId, messages: [u1, t1.message, u2, t2.message, u3], trigger: 'submit-message' }),
      (error) => /rate_limited/.test(error.message),
    );
    const raw = await request(`${ctx.server.baseUrl}/api/chat`, {
      method: 'POST', token, body: { id: chatId, messages: [u3], trigger: 'submit-message' },
    });
    assert.equal(raw.status, 429, raw.text);
    assert.equal(raw.json.code, 'rate_limited');
    assert.ok(Number(raw.headers.get('retry-after')) >= 1, `Retry-After: ${raw.headers.get('retry-after')}`);
    assert.equal((await getMessages(ctx.server, chatId, token)).length, 4, 'nothing of the refused message is stored');
  });

  e2e('a chat past its token budget is refused with 429 budget_exceeded', async () => {
    setup();
    await awayFromTheMinuteEnd();
    ctx.mock.handle(() => ({ text: 'A long answer.', usage: { prompt_tokens: 20, completion_tokens: 400, total_tokens: 420 } }));
    const chatId = newChatId('limit-budget');
    const chat = agentChat(chatId);
    assert.equal(await (await chat.sendMessage('Tell me everything')).text(), 'A long answer.');
    // The turn that crossed the budget finished; the next message is refused.
    await assert.rejects(
      chat.sendMessage('And more'),
      (error) => error.status === 429 && /budget_exceeded/.test(error.message),
    );
    assert.equal((await history(chatId)).length, 2, 'nothing of the refused message is stored');
  });

  e2e('sendAction: undo drops the last exchange, another action changes nothing; each ends with a turn-complete alone', async () => {
    setup();
    await awayFromTheMinuteEnd();
    ctx.mock.handle((req) => ({ text: `About ${contentText(lastMessage(req.messages, 'user')?.content)}.` }));
    const chatId = newChatId('action-undo');
    const chat = agentChat(chatId);
    assert.equal(await (await chat.sendMessage('cats')).text(), 'About cats.');
    assert.deepEqual((await history(chatId)).map(textOf), ['cats', 'About cats.']);

    const undo = await chunksOf(await chat.sendAction({ type: 'undo' }));
    assert.deepEqual(undo, [], 'a void action: no chunks, no error part');
    assert.deepEqual(await history(chatId), [], 'the last exchange is undone');

    // The chat goes on from the undone history (a second message: the limit is two a minute).
    assert.equal(await (await chat.sendMessage('birds')).text(), 'About birds.');
    assert.deepEqual(
      ctx.mock.requests.at(-1).messages.filter((m) => m.role !== 'system').map((m) => contentText(m.content)),
      ['birds'],
    );
    const calls = ctx.mock.requests.length;

    // The browser transport's sendAction, with an action the handler does not act on; the
    // transport goes on from where the AgentChat has read (a page that saved the session).
    const saved = { publicAccessToken: await setup().mint(chatId), lastEventId: chat.session.lastEventId, isStreaming: false };
    const { transport } = makeTriggerTransport(ctx.server, setup(), { sessions: { [chatId]: saved } });
    const read = await readChunks(await transport.sendAction(chatId, { type: 'pin', messageId: 'x' }), { label: 'sendAction' });
    assert.deepEqual(read.chunks.map((c) => c.type), [], 'no error part');
    assert.deepEqual((await history(chatId)).map(textOf), ['birds', 'About birds.']);
    assert.equal(ctx.mock.requests.length, calls, 'actions call no model');

    // In the log: each action is answered by a turn-complete and nothing else.
    const log = await readWholeLog(ctx.server, chatId, await setup().mint(chatId));
    const controls = log.map((r) => r.control ?? r.chunk?.type);
    assert.deepEqual(controls.slice(-3), ['finish', 'turn-complete', 'turn-complete']);
    assert.equal(controls[controls.indexOf('turn-complete') + 1], 'turn-complete', 'the undo: a turn-complete alone');
    assert.equal(turnCompletes(log).length, 4);
  });

  e2e('close() writes nothing and the next message is answered', async () => {
    setup();
    await awayFromTheMinuteEnd();
    ctx.mock.handle((req) => ({ text: `Answer ${contentText(lastMessage(req.messages, 'user')?.content)}.` }));
    const chatId = newChatId('agent-close');
    const chat = agentChat(chatId);
    assert.equal(await (await chat.sendMessage('first')).text(), 'Answer first.');
    const token = await setup().mint(chatId);
    const before = await readWholeLog(ctx.server, chatId, token);

    assert.equal(await chat.close(), true);
    await sleep(500);
    const after = await readWholeLog(ctx.server, chatId, token);
    assert.equal(after.length, before.length, 'the close wrote nothing to the log');

    assert.equal(await (await chat.sendMessage('second')).text(), 'Answer second.');
    assert.deepEqual((await history(chatId)).map(textOf), ['first', 'Answer first.', 'second', 'Answer second.']);
  });

  e2e('sessions.close mid-reply stops the reply and keeps the partial', async () => {
    const { sessions } = setup();
    ctx.mock.handle(() => ({ text: DELTAS, delayMs: 100 }));
    const chatId = newChatId('close-mid-reply');
    const chat = agentChat(chatId);
    const stream = await chat.sendMessage('Write a long essay');
    let closing;
    let text = '';
    const started = Date.now();
    for await (const chunk of stream) {
      if (chunk.type !== 'text-delta') continue;
      text += chunk.delta;
      if (!closing && text.split(' ').length > 3) closing = sessions.close(chatId, { reason: 'done' });
    }
    assert.ok(closing, 'the reply streamed');
    await closing;
    assert.ok(text.length < FULL.length, `the reply was cut short: ${text.length} of ${FULL.length} characters`);
    assert.ok(Date.now() - started < DELTAS.length * 100, 'the stream ended before the model would have');

    const persisted = await waitFor(async () => {
      const messages = await history(chatId);
      return messages.length === 2 ? messages : false;
    }, { message: 'the partial reply to be persisted' });
    const partial = textOf(persisted[1]);
    assert.ok(partial.length > 0 && partial.length < FULL.length && FULL.startsWith(partial), `kept: ${partial}`);
  });
}, { env: LIMITS_ENV });
