// What a person does with a message: copy it, regenerate the reply (the AI SDK's `regenerate`, and
// the Trigger transport's regenerate record), edit one of their messages (sent again under its id,
// the server drops what followed it). Over both transports, checked against the server's history.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { newChatId, openChat, persistedMessages, send, setupSuite, shownMessages, textOf, waitForStatus, withPage } from '../support/harness.js';

function sameAsServer(shown, persisted) {
  assert.deepEqual(
    shown.map((m) => [m.id, m.role, m.text]),
    persisted.map((m) => [m.id, m.role, textOf(m)]),
    'the page shows what the server kept',
  );
}

describe('message actions', () => {
  let suite;
  before(async () => {
    suite = await setupSuite();
  });
  after(async () => {
    await suite?.teardown();
  });

  test('copy a message and a reply', { timeout: 60_000 }, async () => {
    await withPage(suite, 'copy', async (page, shot) => {
      await openChat(page, suite.server, { chatId: newChatId('copy'), transport: 'ai-sdk' });
      await waitForStatus(page, 'ready');
      await send(page, 'Show me some markdown.');
      await waitForStatus(page, 'ready');
      const reply = page.locator('article.message[data-role="assistant"]').last();
      await reply.getByRole('button', { name: 'Copy the reply' }).click();
      await reply.getByRole('button', { name: 'Copied' }).waitFor();
      const copied = await page.evaluate(() => navigator.clipboard.readText());
      assert.match(copied, /^Here is \*\*bold text\*\* and `inline code`\./, 'the reply is copied as Markdown');
      await shot('copied');
      const mine = page.locator('article.message[data-role="user"]').last();
      await mine.hover();
      await mine.getByRole('button', { name: 'Copy your message' }).click();
      await mine.getByRole('button', { name: 'Copied' }).waitFor();
      assert.equal(await page.evaluate(() => navigator.clipboard.readText()), 'Show me some markdown.');
    });
  });

  for (const transport of ['ai-sdk', 'trigger']) {
    test(`over the ${transport} transport, regenerate replaces the last reply`, { timeout: 60_000 }, async () => {
      await withPage(suite, `regenerate-${transport}`, async (page, shot) => {
        const chatId = newChatId(`regenerate-${transport}`);
        await openChat(page, suite.server, { chatId, transport });
        await waitForStatus(page, 'ready');
        await send(page, 'A numbered question, please.');
        await waitForStatus(page, 'ready');
        const [question, first] = await shownMessages(page);
        assert.match(first.text, /^This is answer \d+\.$/);
        await shot('before');

        await page.getByRole('group', { name: 'The reply' }).getByRole('button', { name: 'Regenerate' }).click();
        await page.waitForFunction(
          (old) => {
            const replies = document.querySelectorAll('article.message[data-role="assistant"]');
            const last = replies[replies.length - 1];
            return document.querySelector('.chat')?.dataset.status === 'ready' && last && last.innerText.includes('This is answer') && !last.innerText.includes(old);
          },
          first.text,
        );
        const shown = await shownMessages(page);
        assert.equal(shown.length, 2, `one question, one (new) reply: ${JSON.stringify(shown)}`);
        assert.equal(shown[0].id, question.id);
        assert.notEqual(shown[1].text, first.text);
        assert.match(shown[1].text, /^This is answer \d+\.$/);
        assert.equal(await page.evaluate(() => document.activeElement?.id), 'prompt', 'focus back in the message box');
        await shot('regenerated');
        sameAsServer(shown, await persistedMessages(suite.server, chatId));

        // And after a reload, the same.
        await page.reload();
        await waitForStatus(page, 'ready');
        sameAsServer(await shownMessages(page), await persistedMessages(suite.server, chatId));
      });
    });

    test(`over the ${transport} transport, editing a message replaces it and what followed`, { timeout: 60_000 }, async () => {
      await withPage(suite, `edit-${transport}`, async (page, shot) => {
        const chatId = newChatId(`edit-${transport}`);
        await openChat(page, suite.server, { chatId, transport });
        await waitForStatus(page, 'ready');
        await send(page, 'First numbered question.');
        await waitForStatus(page, 'ready');
        await send(page, 'Second numbered question.');
        await waitForStatus(page, 'ready');
        const before = await shownMessages(page);
        assert.equal(before.length, 4);

        const firstQuestion = page.locator('article.message[data-role="user"]').first();
        await firstQuestion.hover();
        await firstQuestion.getByRole('button', { name: 'Edit', exact: true }).click();
        const box = page.getByRole('textbox', { name: 'Edited message' });
        assert.equal(await box.inputValue(), 'First numbered question.');
        assert.equal(await page.evaluate(() => document.activeElement?.id), 'edit-message', 'the edit box has the focus');
        await box.fill('Edited numbered question.');
        await shot('editing');
        await page.getByRole('button', { name: 'Send edit' }).click();
        await page.waitForFunction(() => {
          const replies = document.querySelectorAll('article.message');
          return document.querySelector('.chat')?.dataset.status === 'ready' && replies.length === 2 && replies[1].innerText.includes('This is answer');
        });
        const shown = await shownMessages(page);
        assert.equal(shown[0].id, before[0].id, 'the edited message keeps its id');
        assert.equal(shown[0].text, 'Edited numbered question.');
        assert.ok(!before.some((m) => m.id === shown[1].id), 'a new reply');
        assert.equal(await page.evaluate(() => document.activeElement?.id), 'prompt', 'focus back in the message box');
        await shot('edited');
        sameAsServer(shown, await persistedMessages(suite.server, chatId));

        // Cancel leaves the message as it was.
        await page.locator('article.message[data-role="user"]').first().hover();
        await page.locator('article.message[data-role="user"]').first().getByRole('button', { name: 'Edit', exact: true }).click();
        await page.getByRole('textbox', { name: 'Edited message' }).fill('Never sent');
        await page.keyboard.press('Escape');
        assert.equal(await page.getByRole('textbox', { name: 'Edited message' }).count(), 0);
        assert.equal((await shownMessages(page))[0].text, 'Edited numbered question.');
      });
    });
  }
});
