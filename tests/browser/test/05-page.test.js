// The page around the chat, with the offline model: it says the offline model answers, keeps a
// list of chats to switch between, starts new ones, and switches transports within a chat.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { persistedMessages, send, setupSuite, shownMessages, textOf, waitForStatus, withPage } from '../support/harness.js';

describe('the page with the offline model', () => {
  let suite;
  before(async () => {
    suite = await setupSuite({ mock: false });
  });
  after(async () => {
    await suite?.teardown();
  });

  test('shows the offline model, lists chats, starts and switches them', { timeout: 90_000 }, async () => {
    await withPage(suite, 'page-offline', async (page, shot) => {
      await page.goto(`${suite.server.baseUrl}/`);
      await waitForStatus(page, 'ready');
      // The chat id went into the address bar, so a reload reopens it.
      const firstChat = new URL(page.url()).searchParams.get('chat');
      assert.match(firstChat ?? '', /^chat-/);
      await page.getByRole('status').filter({ hasText: 'Offline model' }).waitFor();
      assert.match(await page.getByRole('note').innerText(), /No model provider is configured/);

      await send(page, 'Hello there');
      await waitForStatus(page, 'streaming');
      await waitForStatus(page, 'ready');
      const [, reply] = await shownMessages(page);
      assert.match(reply.text, /chatfn offline model/);
      assert.match(reply.text, /You said: "Hello there"/);
      await shot('offline-reply');

      // A second chat, with a tool call that needs no approval.
      await page.getByRole('button', { name: 'New chat' }).click();
      await page.waitForFunction((first) => new URL(location.href).searchParams.get('chat') !== first, firstChat);
      const secondChat = new URL(page.url()).searchParams.get('chat');
      await waitForStatus(page, 'ready');
      assert.equal((await shownMessages(page)).length, 0, 'a new chat starts empty');
      await send(page, 'What time is it?');
      await page.locator('section.tool[data-tool="current_time"][data-state="output-available"]').waitFor();
      await waitForStatus(page, 'ready');
      const timeReply = (await shownMessages(page))[1];
      // The reply's Markdown is rendered: the tool's name in backticks is code.
      assert.match(timeReply.text, /current_time returned/);
      const lastReply = page.locator('article.message[data-role="assistant"]').last();
      assert.equal(await lastReply.locator('.text-part code').first().innerText(), 'current_time');
      await shot('tool-call');

      // Both chats are listed by their first message; the first one opens with its history.
      const chats = page.getByRole('navigation', { name: 'Your chats' });
      await chats.getByRole('button', { name: 'What time is it?', exact: true }).waitFor();
      await chats.getByRole('button', { name: 'Hello there', exact: true }).click();
      await page.waitForFunction((first) => new URL(location.href).searchParams.get('chat') === first, firstChat);
      await waitForStatus(page, 'ready');
      const reopened = await shownMessages(page);
      assert.deepEqual(reopened.map((m) => m.text), ['Hello there', reply.text]);
      assert.equal(await chats.locator('[aria-current="page"]').innerText(), 'Hello there');

      // Switch this chat to the Trigger transport: the next reply is only the new one (earlier
      // turns in the output log are not replayed into it).
      await page.getByRole('radio', { name: 'Trigger.dev' }).check();
      await waitForStatus(page, 'ready');
      await send(page, 'Second question');
      await waitForStatus(page, 'streaming');
      await waitForStatus(page, 'ready');
      const afterSwitch = await shownMessages(page);
      assert.equal(afterSwitch.length, 4, JSON.stringify(afterSwitch));
      assert.match(afterSwitch[3].text, /You said: "Second question"/);
      assert.doesNotMatch(afterSwitch[3].text, /Hello there/);
      const persisted = await persistedMessages(suite.server, firstChat);
      assert.deepEqual(persisted.map(textOf), afterSwitch.map((m) => m.text));
      await shot('trigger-transport');

      // A reload keeps the chat, the transport and the list.
      await page.reload();
      await waitForStatus(page, 'ready');
      assert.equal(new URL(page.url()).searchParams.get('chat'), firstChat);
      assert.equal(await page.getByRole('radio', { name: 'Trigger.dev' }).isChecked(), true);
      assert.equal((await shownMessages(page)).length, 4);
      await chats.getByRole('button', { name: 'What time is it?', exact: true }).waitFor();
      assert.notEqual(secondChat, firstChat);

      // Settings say where the page talks to, and take other servers.
      await page.getByRole('button', { name: 'Settings' }).click();
      const settings = page.getByRole('form', { name: 'Settings' });
      await settings.getByRole('textbox', { name: 'chatfn server' }).fill('not a url');
      await settings.getByRole('button', { name: 'Save and reload' }).click();
      await settings.getByRole('alert').waitFor();
      assert.match(await settings.getByRole('alert').innerText(), /not a URL/);
      await shot('settings');
    });
  });
});
