// An owner's token budget across their chats on the Worker: each chat lives in its own Durable
// Object, and the counter the owner's chats share lives in one object of its own
// (functions/worker/src/usage_counters.rs). A chat of the owner past the budget is refused with
// 429 budget_exceeded however many chats they open; another user's chat is not affected.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startMockOpenAI } from '../support/mock-openai.js';
import { AUDIENCE, startIssuer } from '../support/oidc-issuer.js';
import { getMessages, makeTransport, newChatId, request, sessionBody } from '../support/server.js';
import { sendTurn, textOf, userMessage } from '../support/stream.js';
import { startWorker } from '../support/worker.js';

describe('the Worker: an owner\'s token budget across their chats', () => {
  let issuer;
  let mock;
  let worker;

  before(async () => {
    issuer = await startIssuer();
    mock = await startMockOpenAI();
    worker = await startWorker({
      modelBaseUrl: mock.baseUrl,
      env: { CHATFN_OIDC_ISSUER: issuer.url, CHATFN_OIDC_AUDIENCE: AUDIENCE, CHATFN_MAX_OUTPUT_TOKENS_PER_DAY: '300' },
    });
  }, { timeout: 120_000 });

  after(async () => {
    await worker?.stop();
    await mock?.close();
    await issuer?.close();
  });

  /** A new chat started with `user`'s ID token: its id and session token. */
  async function chatOf(user) {
    const chatId = newChatId(`budget-${user}`);
    const created = await request(`${worker.baseUrl}/api/v1/sessions`, {
      method: 'POST', token: issuer.idToken(user), body: sessionBody(chatId),
    });
    assert.equal(created.status, 201, created.text);
    return { chatId, token: created.json.publicAccessToken };
  }

  const post = (chat, text) => request(`${worker.baseUrl}/api/chat`, {
    method: 'POST', token: chat.token, body: { id: chat.chatId, messages: [userMessage(text)], trigger: 'submit-message' },
  });

  test('a second chat of the owner is refused once the first spent the budget', { timeout: 60_000 }, async () => {
    mock.handle(() => ({ text: 'A long answer.', usage: { prompt_tokens: 20, completion_tokens: 400, total_tokens: 420 } }));
    const first = await chatOf('alice');
    const turn = await sendTurn(makeTransport(worker, first.token), { chatId: first.chatId, messages: [userMessage('Tell me everything')] });
    assert.equal(textOf(turn.message), 'A long answer.');

    const second = await chatOf('alice');
    const refused = await post(second, 'And more');
    assert.equal(refused.status, 429, refused.text);
    assert.equal(refused.json.code, 'budget_exceeded');
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    assert.deepEqual(await getMessages(worker, second.chatId, second.token), [], 'nothing of it is stored');

    const bob = await chatOf('bob');
    const answered = await sendTurn(makeTransport(worker, bob.token), { chatId: bob.chatId, messages: [userMessage('Hello')] });
    assert.equal(textOf(answered.message), 'A long answer.', 'another user has a budget of their own');
  });
});
