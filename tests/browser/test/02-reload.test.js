// Reload in the middle of a reply: the page comes back, resumes the reply where the server is,
// and ends with exactly the message the server kept: no repeated text, no second copy.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  countingReply,
  countsInOrder,
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

describe('a reload mid-reply resumes it', () => {
  let suite;
  before(async () => {
    suite = await setupSuite();
  });
  after(async () => {
    await suite?.teardown();
  });

  for (const transport of ['ai-sdk', 'trigger']) {
    test(`over the ${transport} transport`, { timeout: 90_000 }, async () => {
      await withPage(suite, `reload-${transport}`, async (page, shot) => {
        const chatId = newChatId(`reload-${transport}`);
        await openChat(page, suite.server, { chatId, transport });
        await waitForStatus(page, 'ready');
        const expected = countingReply(40);
        await send(page, 'Count to 40 slowly.');
        // Part of the reply is on screen.
        const before = await sampleReply(page, { until: (s) => /: 1 2 3 4 5/.test(s.text) });
        const partial = before.at(-1).text;
        assert.ok(partial.length < expected.length, 'reloading before the reply ended');
        await shot('before-reload');

        await page.reload();
        await page.locator('.chat').waitFor();
        // After the reload the reply is still arriving: shown partly, then whole.
        const resuming = await sampleReply(page, {
          until: (s) => s.status === 'streaming' && s.text.length > partial.length,
          timeoutMs: 20_000,
        });
        await shot('resumed');
        const rest = await sampleReply(page, {
          until: (s) => s.status === 'ready' && s.text === expected,
          timeoutMs: 40_000,
        });
        const afterReload = [...resuming, ...rest];
        const resumedPartly = afterReload.filter((s) => s.text && s.text.length < expected.length);
        assert.ok(resumedPartly.length > 0, 'the reply was resumed while it streamed, not only loaded at the end');
        for (const sample of afterReload) {
          assert.ok(expected.startsWith(sample.text), `never a repeated or foreign word: ${JSON.stringify(sample.text)}`);
          assert.ok(countsInOrder(sample.text), `numbers once each, in order: ${sample.text}`);
        }
        await shot('done');

        const shown = await shownMessages(page);
        const persisted = await persistedMessages(suite.server, chatId);
        assert.equal(shown.length, 2, `one question, one answer: ${JSON.stringify(shown)}`);
        assert.deepEqual(
          shown.map((m) => [m.id, m.role, m.text]),
          persisted.map((m) => [m.id, m.role, textOf(m)]),
          'the page shows the message the server kept',
        );
        assert.equal(textOf(persisted.at(-1)), expected);

        // And a later reload shows the finished chat without resuming anything.
        await page.reload();
        await waitForStatus(page, 'ready');
        await page.waitForTimeout(500);
        const again = await shownMessages(page);
        assert.deepEqual(again.map((m) => [m.id, m.text]), shown.map((m) => [m.id, m.text]));
      });
    });
  }
});
