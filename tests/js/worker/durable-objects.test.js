// What only the Worker must do: chats live in their Durable Objects' storage and survive a restart
// of the runtime (wrangler dev with persistence, as a deploy or an eviction would), a turn keeps
// running and is persisted after its client hung up, and requests that name no chat are answered
// by the Worker itself. Run by scripts/worker-e2e.sh.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { validateUIMessages } from 'ai';
import { contentText, lastMessage, startMockOpenAI } from '../support/mock-openai.js';
import { createSession, getMessages, makeTransport, newChatId, request, sessionBody } from '../support/server.js';
import { assertSameMessages, assertWellFormedReply, readChunks, sendTurn, textOf, userMessage } from '../support/stream.js';
import { startWorker } from '../support/worker.js';

const TIMEOUT = { timeout: 120_000 };

describe('the Worker: Durable Object per chat', () => {
  let mock;
  let worker;
  let persistDir;
  let secretKey;

  before(async () => {
    mock = await startMockOpenAI();
    worker = await startWorker({ modelBaseUrl: mock.baseUrl });
    ({ persistDir, secretKey } = worker);
  }, TIMEOUT);

  after(async () => {
    await worker?.stop();
    await mock?.close();
  }, TIMEOUT);

  test('a chat survives a restart of the runtime, and its next turn sees the history', TIMEOUT, async () => {
    mock.reset();
    const chatId = newChatId('restart');
    const token = await createSession(worker, chatId);
    mock.handle((req) => {
      const user = contentText(lastMessage(req.messages, 'user')?.content);
      return { text: [`You said: `, user], delayMs: 5 };
    });
    const u1 = userMessage('remember the number 42');
    const turn1 = await sendTurn(makeTransport(worker, token), { chatId, messages: [u1] });
    assertWellFormedReply(turn1.chunks);
    const before = await getMessages(worker, chatId, token);
    assertSameMessages(before, [u1, turn1.message]);

    await worker.stop();
    worker = await startWorker({ modelBaseUrl: mock.baseUrl, persistDir, secretKey });

    const after = await getMessages(worker, chatId, token);
    await validateUIMessages({ messages: after });
    assert.deepEqual(after, before, 'the restarted runtime serves the same history from storage');

    const u2 = userMessage('what number?');
    const turn2 = await sendTurn(makeTransport(worker, token), { chatId, messages: [u1, turn1.message, u2] });
    assertWellFormedReply(turn2.chunks);
    assert.equal(textOf(turn2.message), 'You said: what number?');
    const texts = mock.requests.at(-1).messages.filter((m) => m.role !== 'system').map((m) => contentText(m.content));
    assert.deepEqual(texts, ['remember the number 42', 'You said: remember the number 42', 'what number?']);
  });

  test('a turn whose client hangs up runs to the end in its Durable Object and is persisted', TIMEOUT, async () => {
    mock.reset();
    const chatId = newChatId('hangup');
    const token = await createSession(worker, chatId);
    const words = Array.from({ length: 30 }, (_, i) => `w${i} `);
    mock.handle(() => ({ text: words, delayMs: 40 }));
    const controller = new AbortController();
    const u1 = userMessage('a long answer please');
    const stream = await makeTransport(worker, token).sendMessages({
      chatId,
      messages: [u1],
      trigger: 'submit-message',
      messageId: undefined,
      abortSignal: controller.signal,
    });
    let deltas = 0;
    await readChunks(stream, {
      expectAbort: true,
      onChunk: (chunk) => {
        if (chunk.type === 'text-delta' && ++deltas === 3) controller.abort();
      },
    });
    // The reply goes on without the client; wait for it to be complete in storage.
    let messages = [];
    for (let i = 0; i < 100; i += 1) {
      messages = await getMessages(worker, chatId, token);
      if (messages.length === 2 && textOf(messages[1]) === words.join('')) break;
      await sleep(100);
    }
    assert.equal(messages.length, 2, 'the user message and the whole reply are persisted');
    assert.equal(textOf(messages[1]), words.join(''));
  });

  test('readers that hang up mid-reply leave no error in the runtime\'s log', TIMEOUT, async () => {
    mock.reset();
    const words = Array.from({ length: 30 }, (_, i) => `w${i} `);
    mock.handle(() => ({ text: words, delayMs: 40 }));
    const mark = worker.mark();

    // The AI SDK wire: the transport's fetch aborted after a few deltas.
    const aiChat = newChatId('dropped-ai');
    const aiToken = await createSession(worker, aiChat);
    const controller = new AbortController();
    const stream = await makeTransport(worker, aiToken).sendMessages({
      chatId: aiChat,
      messages: [userMessage('a long answer please')],
      trigger: 'submit-message',
      messageId: undefined,
      abortSignal: controller.signal,
    });
    let deltas = 0;
    await readChunks(stream, {
      expectAbort: true,
      onChunk: (chunk) => {
        if (chunk.type === 'text-delta' && ++deltas === 3) controller.abort();
      },
    });

    // The Trigger wire: an `out` reader dropped once the reply streams.
    const triggerChat = newChatId('dropped-trigger');
    const triggerToken = await createSession(worker, triggerChat);
    const appended = await request(`${worker.baseUrl}/realtime/v1/sessions/${triggerChat}/in/append`, {
      method: 'POST',
      token: triggerToken,
      body: { kind: 'message', payload: { message: userMessage('a long answer please'), chatId: triggerChat, trigger: 'submit-message' } },
    });
    assert.equal(appended.status, 200, appended.text);
    const reading = new AbortController();
    const out = await fetch(`${worker.baseUrl}/realtime/v1/sessions/${triggerChat}/out`, {
      headers: { authorization: `Bearer ${triggerToken}`, 'timeout-seconds': '30' },
      signal: reading.signal,
    });
    assert.equal(out.status, 200);
    const reader = out.body.getReader();
    const decoder = new TextDecoder();
    let seen = '';
    while (!seen.includes('w2 ')) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += decoder.decode(value, { stream: true });
    }
    reading.abort();
    await reader.cancel().catch(() => {});

    // An idle reader (nothing to read yet), dropped while it waits.
    const idleChat = newChatId('dropped-idle');
    const idleToken = await createSession(worker, idleChat);
    const waiting = new AbortController();
    const idle = await fetch(`${worker.baseUrl}/realtime/v1/sessions/${idleChat}/out`, {
      headers: { authorization: `Bearer ${idleToken}`, 'timeout-seconds': '30' },
      signal: waiting.signal,
    });
    assert.equal(idle.status, 200);
    const idleReader = idle.body.getReader();
    await idleReader.read();
    await sleep(1_500);
    waiting.abort();
    await idleReader.cancel().catch(() => {});
    await sleep(1_000);

    // Both replies go on without their readers; then the log is read.
    for (const [chatId, token] of [[aiChat, aiToken], [triggerChat, triggerToken]]) {
      let messages = [];
      for (let i = 0; i < 100; i += 1) {
        messages = await getMessages(worker, chatId, token);
        if (messages.length === 2 && textOf(messages[1]) === words.join('')) break;
        await sleep(100);
      }
      assert.equal(messages[1] ? textOf(messages[1]) : "", words.join(""), `${chatId}: the whole reply is persisted`);
    }
    await sleep(500);
    const log = worker.logs(mark);
    assert.doesNotMatch(log, /Disallowed operation|releaseLock/, log);
  });

  test('an alarm deletes a chat once its session has expired', TIMEOUT, async () => {
    const chatId = newChatId('expiring');
    const created = await request(`${worker.baseUrl}/api/v1/sessions`, {
      method: 'POST',
      token: worker.secretKey,
      body: { ...sessionBody(chatId), expiresAt: new Date(Date.now() + 2_000).toISOString() },
    });
    assert.equal(created.status, 201, created.text);
    const token = created.json.publicAccessToken;
    const messagesUrl = `${worker.baseUrl}/api/chat/${chatId}/messages`;
    const live = await request(messagesUrl, { token });
    assert.equal(live.status, 200, live.text);

    // Expired, the chat refuses work at once; then its alarm removes it from storage.
    let last;
    for (let i = 0; i < 150; i += 1) {
      last = await request(messagesUrl, { token });
      if (last.status === 404) break;
      assert.ok([200, 409].includes(last.status), `before its removal the chat answers 200 or 409: ${last.status} ${last.text}`);
      await sleep(100);
    }
    assert.equal(last.status, 404, `the expired chat is gone: ${last.text}`);
    assert.match(last.json.error, /no chat session/);
  });

  test('requests that name no chat are answered by the Worker without a Durable Object', TIMEOUT, async () => {
    const claims = await request(`${worker.baseUrl}/api/v1/auth/jwt/claims`, { method: 'POST', token: worker.secretKey, body: {} });
    assert.equal(claims.status, 200, claims.text);
    assert.equal(claims.json.pub, true);

    const unknown = await request(`${worker.baseUrl}/no/such/route`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.code, 'not_found');

    // The credential is judged first: with the secret key, the body's missing chat is what is refused.
    const noChat = await request(`${worker.baseUrl}/api/chat`, { method: 'POST', token: worker.secretKey, body: { messages: [] } });
    assert.ok([400, 401, 422].includes(noChat.status), `a send naming no chat is refused: ${noChat.status} ${noChat.text}`);
    assert.match(noChat.json?.error ?? '', /missing field `id`/, noChat.text);
    const noCredential = await request(`${worker.baseUrl}/api/chat`, { method: 'POST', token: 'x', body: { messages: [] } });
    assert.equal(noCredential.status, 401, noCredential.text);

    const preflight = await fetch(`${worker.baseUrl}/api/chat`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    assert.ok(preflight.status < 300, `CORS preflight: ${preflight.status}`);
    assert.equal(preflight.headers.get('access-control-allow-origin'), '*');
  });
});
