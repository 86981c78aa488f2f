// The chat list comes from the server (through the local server's dev routes), so a second
// browser context (another device) lists the same chats, last active first; a rename and a
// delete made in one are there in the other and after a reload; a delete asks first.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { LAPTOP, PHONE, newChatId, openChat, send, setupSuite, waitForStatus, withPage } from '../support/harness.js';

/** The titles the sidebar lists, top to bottom. */
function listedTitles(page) {
  return page.getByRole('navigation', { name: 'Your chats' }).locator('.chat-link').allInnerTexts();
}

/** Waits until the sidebar lists `titles` first, in that order. */
async function waitForListed(page, titles, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let shown;
  while (Date.now() < deadline) {
    shown = await listedTitles(page);
    if (JSON.stringify(shown.slice(0, titles.length)) === JSON.stringify(titles)) return shown;
    await page.waitForTimeout(100);
  }
  assert.fail(`after ${timeoutMs} ms the list shows ${JSON.stringify(shown)}, not ${JSON.stringify(titles)} first`);
}

/** The chat ids the server lists (as the page's backend does). */
async function serverChatIds(server) {
  const response = await fetch(`${server.baseUrl}/dev/sessions`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(response.status, 200);
  return (await response.json()).chats.map((chat) => chat.chatId);
}

describe('the chat list from the server', () => {
  let suite;
  before(async () => {
    suite = await setupSuite();
  });
  after(async () => {
    await suite?.teardown();
  });

  test('is the same on another device, renames and deletes persist, delete asks first', { timeout: 90_000 }, async () => {
    const tripChat = newChatId('list-trip');
    const notesChat = newChatId('list-notes');
    await withPage(
      suite,
      'chat-list-laptop',
      async (laptop, shotLaptop) => {
        await openChat(laptop, suite.server, { chatId: tripChat, transport: 'ai-sdk' });
        await send(laptop, 'Plan a trip to Lisbon');
        await waitForStatus(laptop, 'ready');
        await openChat(laptop, suite.server, { chatId: notesChat, transport: 'ai-sdk' });
        await send(laptop, 'Notes for the meeting');
        await waitForStatus(laptop, 'ready');
        await waitForListed(laptop, ['Notes for the meeting', 'Plan a trip to Lisbon']);

        await withPage(
          suite,
          'chat-list-phone',
          async (phone, shotPhone) => {
            // A fresh context has nothing of the other's storage: the list is the server's.
            await phone.goto(`${suite.server.baseUrl}/?chat=${encodeURIComponent(tripChat)}`);
            await waitForStatus(phone, 'ready');
            await phone.getByRole('button', { name: 'Chats', exact: true }).click();
            await waitForListed(phone, ['Notes for the meeting', 'Plan a trip to Lisbon']);
            await shotPhone('listed-on-another-device');

            // A turn moves its chat to the top, here and (once it looks again) on the laptop.
            await phone.keyboard.press('Escape');
            await send(phone, 'And a day in Sintra');
            await waitForStatus(phone, 'ready');
            await phone.getByRole('button', { name: 'Chats', exact: true }).click();
            await waitForListed(phone, ['Plan a trip to Lisbon', 'Notes for the meeting']);
            await laptop.reload();
            await waitForStatus(laptop, 'ready');
            await waitForListed(laptop, ['Plan a trip to Lisbon', 'Notes for the meeting']);

            // Rename on the phone: the laptop sees it after a reload, and so does the phone.
            const chats = phone.getByRole('navigation', { name: 'Your chats' });
            await chats.getByRole('button', { name: 'Rename “Plan a trip to Lisbon”' }).click();
            const field = chats.getByRole('textbox', { name: 'Chat title' });
            assert.equal(await field.inputValue(), 'Plan a trip to Lisbon');
            await field.fill('Lisbon in May');
            await shotPhone('renaming');
            await field.press('Enter');
            await waitForListed(phone, ['Lisbon in May', 'Notes for the meeting']);
            await phone.reload();
            await waitForStatus(phone, 'ready');
            await phone.getByRole('button', { name: 'Chats', exact: true }).click();
            await waitForListed(phone, ['Lisbon in May', 'Notes for the meeting']);
            await laptop.reload();
            await waitForStatus(laptop, 'ready');
            await waitForListed(laptop, ['Lisbon in May', 'Notes for the meeting']);
            // Escape leaves a rename without saving it.
            const laptopChats = laptop.getByRole('navigation', { name: 'Your chats' });
            await laptopChats.getByRole('button', { name: 'Rename “Lisbon in May”' }).click();
            await laptopChats.getByRole('textbox', { name: 'Chat title' }).fill('Not this');
            await laptopChats.getByRole('textbox', { name: 'Chat title' }).press('Escape');
            await waitForListed(laptop, ['Lisbon in May', 'Notes for the meeting']);
            assert.equal(
              await laptop.evaluate(() => document.activeElement?.getAttribute('aria-label')),
              'Rename “Lisbon in May”',
              'the focus is back on the button that opened the form',
            );

            // Delete asks first: Cancel keeps the chat, on the server too.
            await laptopChats.getByRole('button', { name: 'Delete “Notes for the meeting”' }).click();
            const confirm = laptopChats.getByRole('group', { name: 'Delete “Notes for the meeting”?' });
            await confirm.waitFor();
            await shotLaptop('delete-asks-first');
            assert.ok((await serverChatIds(suite.server)).includes(notesChat), 'nothing is deleted before the answer');
            await confirm.getByRole('button', { name: 'Cancel' }).click();
            await waitForListed(laptop, ['Lisbon in May', 'Notes for the meeting']);
            assert.ok((await serverChatIds(suite.server)).includes(notesChat));

            await laptopChats.getByRole('button', { name: 'Delete “Notes for the meeting”' }).click();
            await confirm.getByRole('button', { name: 'Delete', exact: true }).click();
            await laptop.waitForFunction(
              () => ![...document.querySelectorAll('.chat-link')].some((link) => link.textContent === 'Notes for the meeting'),
            );
            assert.ok(!(await serverChatIds(suite.server)).includes(notesChat), 'erased on the server');
            await laptop.reload();
            await waitForStatus(laptop, 'ready');
            await waitForListed(laptop, ['Lisbon in May']);
            assert.ok(!(await listedTitles(laptop)).includes('Notes for the meeting'));
            await shotLaptop('after-delete');
            await phone.reload();
            await waitForStatus(phone, 'ready');
            await phone.getByRole('button', { name: 'Chats', exact: true }).click();
            await waitForListed(phone, ['Lisbon in May']);
            assert.ok(!(await listedTitles(phone)).includes('Notes for the meeting'));
            await shotPhone('after-delete');
          },
          { viewport: PHONE },
        );
      },
      { viewport: LAPTOP },
    );
  });
});
