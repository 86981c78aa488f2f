// chatfn's Worker reached from an application's own Worker by a service binding, as
// docs/deploy-cloudflare.md shows it: the app (tests/js/worker/service-binding/) serves its own
// routes and forwards /chat/… to its CHATFN binding. Under wrangler dev the two run as separate
// sessions and the binding resolves through wrangler's local dev registry, as two deployed Workers
// of one account resolve by name. The stock clients then talk to chatfn only through the app.
// Run by scripts/worker-e2e.sh.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startMockOpenAI } from '../support/mock-openai.js';
import { createSession, getMessages, makeTransport, newChatId, request } from '../support/server.js';
import { assertSameMessages, assertWellFormedReply, sendTurn, textOf, userMessage } from '../support/stream.js';
import { startWorker } from '../support/worker.js';

const TIMEOUT = { timeout: 120_000 };
const APP = { config: 'tests/js/worker/service-binding/wrangler.toml' };

describe('the Worker: reached from another Worker by a service binding', () => {
  let mock;
  let chatfn;
  let app;
  /** chatfn as the app's clients see it: under the app's /chat, with chatfn's secret key. */
  let throughApp;

  before(async () => {
    mock = await startMockOpenAI();
    chatfn = await startWorker({ modelBaseUrl: mock.baseUrl });
    app = await startWorker({ crate: APP });
    throughApp = { baseUrl: `${app.baseUrl}/chat`, secretKey: chatfn.secretKey };
  }, TIMEOUT);

  after(async () => {
    await app?.stop();
    await chatfn?.stop();
    await mock?.close();
  }, TIMEOUT);

  test('the app serves its own routes', TIMEOUT, async () => {
    const own = await request(`${app.baseUrl}/health`);
    assert.equal(own.status, 200, own.text);
    assert.deepEqual(own.json, { app: 'chat-app', path: '/health' });
  });

  test('a session and a streamed turn go through the binding, and chatfn keeps the chat', TIMEOUT, async () => {
    const chatId = newChatId('binding');
    // The binding reaches chatfn once its dev session is registered: the first request may
    // come before that, so the session start is tried for a while.
    let token;
    for (let attempt = 0; attempt < 40 && !token; attempt += 1) {
      token = await createSession(throughApp, chatId).catch(async (error) => {
        if (attempt === 39) throw error;
        await new Promise((resolve) => setTimeout(resolve, 500));
        return undefined;
      });
    }
    mock.handle(() => ({ text: ['Hello ', 'through ', 'the binding.'], delayMs: 5 }));
    const u1 = userMessage('hi from the app');
    const turn = await sendTurn(makeTransport(throughApp, token), { chatId, messages: [u1] });
    assertWellFormedReply(turn.chunks);
    assert.equal(textOf(turn.message), 'Hello through the binding.');

    // The same chat, read from chatfn's own URL: the binding reached the real Worker.
    const stored = await getMessages(chatfn, chatId, token);
    assertSameMessages(stored, [u1, turn.message]);
  });

  test('chatfn\'s errors come back through the binding unchanged', TIMEOUT, async () => {
    const unknown = await request(`${throughApp.baseUrl}/api/chat/${newChatId('none')}/messages`, { token: 'not-a-token' });
    assert.equal(unknown.status, 401, unknown.text);
    assert.equal(typeof unknown.json?.error, 'string', unknown.text);
  });
});
