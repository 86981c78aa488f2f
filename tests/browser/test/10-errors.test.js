// When something fails, the page says which server and what to do, marks the message that did
// not go through, and a Retry sends it: a server that cannot be reached (over both transports), a
// server that answers with an error, and a token backend that cannot be reached when a chat opens.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { newChatId, openChat, persistedMessages, send, setupSuite, shownMessages, textOf, waitForStatus, withPage } from '../support/harness.js';

// The requests that carry a new message on each transport.
const SEND_ROUTES = {
  'ai-sdk': '**/api/chat',
  trigger: '**/realtime/v1/sessions/*/in/append',
};

async function assertRetried(page, suite, chatId, question) {
  await page.locator('article.message[data-role="assistant"]').waitFor();
  await waitForStatus(page, 'ready');
  const shown = await shownMessages(page);
  assert.deepEqual(
    shown.map((m) => m.text),
    [question, 'This is the mock model.'],
  );
  assert.equal(await page.locator('[data-failed]').count(), 0, 'no message is marked failed any more');
  assert.equal(await page.getByRole('alert').count(), 0, 'the error is gone');
  const persisted = await persistedMessages(suite.server, chatId);
  assert.deepEqual(
    persisted.map((m) => [m.id, textOf(m)]),
    shown.map((m) => [m.id, m.text]),
  );
}

describe('errors a person understands', () => {
  let suite;
  before(async () => {
    suite = await setupSuite();
  });
  after(async () => {
    await suite?.teardown();
  });

  for (const transport of ['ai-sdk', 'trigger']) {
    test(`over the ${transport} transport, an unreachable server: named, the message marked, Retry sends it`, { timeout: 90_000 }, async () => {
      await withPage(suite, `unreachable-${transport}`, async (page, shot) => {
        const chatId = newChatId(`unreachable-${transport}`);
        await openChat(page, suite.server, { chatId, transport });
        await waitForStatus(page, 'ready');
        await page.route(SEND_ROUTES[transport], (route) => route.abort('connectionrefused'));
        await send(page, 'Hello, is anyone there?');

        const alert = page.getByRole('alert');
        await alert.waitFor({ timeout: 60_000 });
        const said = await alert.innerText();
        assert.match(said, new RegExp(`Could not reach the chatfn server at ${suite.server.baseUrl.replace(/[.]/g, '\\.')}`));
        assert.match(said, /Check that the server is running/);
        assert.doesNotMatch(said, /Failed to fetch|\{"/, 'no raw error');
        const failed = page.locator('article.message[data-failed]');
        assert.equal(await failed.getAttribute('data-role'), 'user');
        assert.match(await failed.innerText(), /Not sent\./);
        await shot('failed');

        await page.unroute(SEND_ROUTES[transport]);
        await alert.getByRole('button', { name: 'Retry' }).click();
        await assertRetried(page, suite, chatId, 'Hello, is anyone there?');
        await shot('retried');
      });
    });
  }

  test('a server error: said in words, Retry on the message sends it again', { timeout: 60_000 }, async () => {
    await withPage(suite, 'server-error', async (page, shot) => {
      const chatId = newChatId('server-error');
      await openChat(page, suite.server, { chatId, transport: 'ai-sdk' });
      await waitForStatus(page, 'ready');
      await page.route(SEND_ROUTES['ai-sdk'], (route) =>
        route.fulfill({
          status: 503,
          contentType: 'application/json',
          body: JSON.stringify({ ok: false, error: 'the model provider is overloaded', code: 'model_unavailable' }),
        }),
      );
      await send(page, 'Are you busy?');
      const alert = page.getByRole('alert');
      await alert.waitFor();
      const said = await alert.innerText();
      assert.match(said, /The chatfn server could not answer: the model provider is overloaded/);
      assert.doesNotMatch(said, /\{"/, 'the JSON body is not shown raw');
      await shot('failed');

      // Dismissed, the message stays marked and can still be retried.
      await alert.getByRole('button', { name: 'Dismiss' }).click();
      const failed = page.locator('article.message[data-failed]');
      assert.match(await failed.innerText(), /Not sent\./);
      await page.unroute(SEND_ROUTES['ai-sdk']);
      await failed.getByRole('button', { name: 'Retry' }).click();
      await assertRetried(page, suite, chatId, 'Are you busy?');
    });
  });

  test('a token backend that cannot be reached when a chat opens: named, Try again opens it', { timeout: 60_000 }, async () => {
    await withPage(suite, 'backend-unreachable', async (page, shot) => {
      await page.route('**/dev/sessions', (route) => route.abort('connectionrefused'));
      const chatId = newChatId('backend-unreachable');
      await page.goto(`${suite.server.baseUrl}/?chat=${chatId}&transport=ai-sdk`);
      const alert = page.getByRole('alert');
      await alert.waitFor();
      const said = await alert.innerText();
      assert.match(said, /This chat could not be opened\. Could not reach the token backend at http:\/\/127\.0\.0\.1:\d+\./);
      assert.match(said, /Check that the server is running \(or change its address in Settings\)/);
      await shot('failed');
      await page.unroute('**/dev/sessions');
      await alert.getByRole('button', { name: 'Try again' }).click();
      await waitForStatus(page, 'ready');
      await send(page, 'Now it works?');
      await waitForStatus(page, 'ready');
      assert.equal((await shownMessages(page)).length, 2);
    });
  });
});
