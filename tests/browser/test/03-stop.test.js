// Stop in the middle of a reply: the words so far stay, the server ends the turn (the model call
// is cut), keeps the same partial reply, and the next message gets a whole answer. "Stopped"
// stays on the reply after a reload.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  countingReply,
  newChatId,
  openChat,
  persistedMessages,
  sampleReply,
  send,
  setupSuite,
  shownMessages,
  textOf,
  waitForStatus,
  withPage,
} from '../support/harness.js';

describe('stop mid-reply', () => {
  let suite;
  before(async () => {
    suite = await setupSuite();
  });
  after(async () => {
    await suite?.teardown();
  });

  for (const transport of ['ai-sdk', 'trigger']) {
    test(`over the ${transport} transport`, { timeout: 90_000 }, async () => {
      await withPage(suite, `stop-${transport}`, async (page, shot) => {
        const chatId = newChatId(`stop-${transport}`);
        await openChat(page, suite.server, { chatId, transport });
        await waitForStatus(page, 'ready');
        const full = countingReply(40);
        const requestsBefore = suite.mock.requests.length;
        await send(page, 'Count to 40 slowly.');
        await sampleReply(page, { until: (s) => /: 1 2 3 4/.test(s.text) });
        await page.getByRole('button', { name: 'Stop' }).click();
        await waitForStatus(page, 'ready');
        const stoppedAt = Date.now();
        const shownAfterStop = await shownMessages(page);
        const partial = shownAfterStop.at(-1).text;
        assert.ok(partial.length > 'Counting to 40:'.length, `the words so far stay: ${JSON.stringify(partial)}`);
        assert.ok(partial.length < full.length && full.startsWith(partial), `a prefix of the reply: ${partial}`);
        await shot('stopped');

        // The server ended the turn: the model call was cut and the partial reply was kept.
        const call = suite.mock.requests[requestsBefore];
        assert.ok(call?.aborted, 'the model request was cut');
        await page.waitForTimeout(1_000);
        assert.equal(await page.locator('article.message').last().innerText().then((t) => t.includes(partial)), true);
        const afterWait = await shownMessages(page);
        assert.equal(afterWait.at(-1).text, partial, 'nothing more arrived after the stop');
        const persisted = await persistedMessages(suite.server, chatId);
        assert.deepEqual(
          afterWait.map((m) => [m.id, m.role, m.text]),
          persisted.map((m) => [m.id, m.role, textOf(m)]),
          'the page shows the partial reply the server kept',
        );
        assert.ok(Date.now() - stoppedAt < 30_000);

        // The next message works.
        await send(page, 'Count to 5.');
        await sampleReply(page, { until: (s) => s.status === 'ready' && s.text === countingReply(5) });
        const shown = await shownMessages(page);
        assert.deepEqual(
          shown.map((m) => [m.role, m.text]),
          [
            ['user', 'Count to 40 slowly.'],
            ['assistant', partial],
            ['user', 'Count to 5.'],
            ['assistant', countingReply(5)],
          ],
        );
        const final = await persistedMessages(suite.server, chatId);
        assert.deepEqual(final.map((m) => textOf(m)), shown.map((m) => m.text));
        assert.equal(final[1].metadata?.finishReason, 'stopped', 'the history says the reply was stopped');
        await shot('next-message');

        // "Stopped" is the history's: it stays on the stopped reply after a reload, and only there.
        const stoppedNotes = () =>
          page.evaluate(() =>
            Array.from(document.querySelectorAll('article.message'), (article) => Boolean(article.querySelector('.stopped-note'))),
          );
        assert.deepEqual(await stoppedNotes(), [false, true, false, false], 'before the reload');
        await page.reload();
        await page.locator('.chat').waitFor();
        await waitForStatus(page, 'ready');
        await page.locator('article.message').nth(3).waitFor();
        assert.deepEqual(await stoppedNotes(), [false, true, false, false], 'after the reload');
        await shot('stopped-after-reload');
      });
    });
  }
});
