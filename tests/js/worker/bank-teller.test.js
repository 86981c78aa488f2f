// An agent of your own on the Worker: examples/bank-teller/worker is chatfn's Worker serving the
// bank teller (typed tools, a transfer behind approval, a per-chat ledger in the chat's Durable
// Object). Through the stock DefaultChatTransport: the model is offered the teller's tools, the
// balance tool reads the chat's ledger, and a transfer waits for approval with a signed request.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { contentText, startMockOpenAI } from '../support/mock-openai.js';
import { createSession, makeTransport, newChatId } from '../support/server.js';
import { assertWellFormedReply, sendTurn, textOf, userMessage } from '../support/stream.js';
import { startWorker } from '../support/worker.js';

const TELLER = { dir: 'examples/bank-teller/worker', config: 'examples/bank-teller/worker/wrangler.toml' };

describe('the bank teller example on the Worker', () => {
  let mock;
  let worker;

  before(async () => {
    mock = await startMockOpenAI();
    worker = await startWorker({ modelBaseUrl: mock.baseUrl, crate: TELLER });
  }, { timeout: 120_000 });

  after(async () => {
    await worker?.stop();
    await mock?.close();
  });

  test('the teller\'s tools run in the chat\'s Durable Object; a transfer waits for approval', { timeout: 60_000 }, async () => {
    const chatId = newChatId('teller');
    const token = await createSession(worker, chatId);
    const transport = makeTransport(worker, token);

    mock.reset();
    mock.handle((req) => {
      const last = req.messages.at(-1);
      if (last?.role === 'tool') {
        const balance = JSON.parse(contentText(last.content));
        return { text: [`Your balance is ${balance.balance_cents} cents.`] };
      }
      return { toolCalls: [{ id: 'call_balance', name: 'balance', args: ['{}'] }] };
    });
    const first = await sendTurn(transport, { chatId, messages: [userMessage('What is my balance?')] });
    assertWellFormedReply(first.chunks);
    assert.deepEqual([...mock.requests[0].toolNames].sort(), ['balance', 'transfer'], 'the model is offered the teller\'s tools, not the stock ones');
    assert.match(contentText(mock.requests[0].messages[0].content), /bank teller/, 'the teller\'s instructions');
    const balance = first.message.parts.find((part) => part.type === 'tool-balance');
    assert.equal(balance?.state, 'output-available', JSON.stringify(first.message.parts));
    assert.deepEqual(balance.output, { balance_cents: 10_000, transfers: 0 }, 'a new chat\'s ledger');
    assert.equal(textOf(first.message), 'Your balance is 10000 cents.');

    mock.reset();
    mock.handle(() => ({ toolCalls: [{ id: 'call_transfer', name: 'transfer', args: ['{"to":"Ada","amount_cents":2500}'] }] }));
    const second = await sendTurn(transport, {
      chatId,
      messages: [userMessage('What is my balance?'), first.message, userMessage('Send 25.00 to Ada')],
    });
    const request = second.chunks.find((chunk) => chunk.type === 'tool-approval-request');
    assert.ok(request, `the transfer asks for approval: ${second.chunks.map((c) => c.type).join(', ')}`);
    assert.equal(typeof request.signature, 'string', 'the approval request is signed by the server');
    const transfer = second.message.parts.find((part) => part.type === 'tool-transfer');
    assert.equal(transfer?.state, 'approval-requested', JSON.stringify(second.message.parts));
    assert.equal(mock.requests.length, 1, 'the turn ends on the approval request');
  });
});
