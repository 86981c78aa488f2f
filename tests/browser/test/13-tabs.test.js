// One chat open in two browser contexts (two tabs, two devices): a turn started in either shows
// in the other within a few seconds, its reply streaming there too, and neither ever shows the
// other's reply as its own.

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

/** Waits until the page shows exactly `expected` ([role, text] pairs). */
async function waitForShown(page, expected, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let shown;
  while (Date.now() < deadline) {
    shown = (await shownMessages(page)).map((m) => [m.role, m.text]);
    if (JSON.stringify(shown) === JSON.stringify(expected)) return;
    await page.waitForTimeout(100);
  }
  assert.fail(`after ${timeoutMs} ms the page shows ${JSON.stringify(shown)}, not ${JSON.stringify(expected)}`);
}

describe('a chat open in two places', () => {
  let suite;
  before(async () => {
    suite = await setupSuite();
  });
  after(async () => {
    await suite?.teardown();
  });

  for (const transport of ['ai-sdk', 'trigger']) {
    test(`each follows the other's turns over the ${transport} transport`, { timeout: 90_000 }, async () => {
      const chatId = newChatId(`tabs-${transport}`);
      await withPage(suite, `tabs-${transport}-a`, async (first, shotFirst) => {
        await withPage(suite, `tabs-${transport}-b`, async (second, shotSecond) => {
          await openChat(first, suite.server, { chatId, transport });
          await openChat(second, suite.server, { chatId, transport });
          await waitForStatus(first, 'ready');
          await waitForStatus(second, 'ready');

          // A slow reply, so the other page finds it running and attaches to its stream.
          const slow = countingReply(20);
          await send(first, 'Count to 20 slowly.');
          const sentAt = Date.now();
          await second.locator('article.message[data-role="user"]').first().waitFor({ timeout: 8_000 });
          const seenAfter = Date.now() - sentAt;
          assert.ok(seenAfter < 8_000, `the other page saw the message after ${seenAfter} ms`);
          await second.locator('.chat[data-status="streaming"]').waitFor({ timeout: 8_000 });
          await shotSecond('following');
          const one = [
            ['user', 'Count to 20 slowly.'],
            ['assistant', slow],
          ];
          await waitForShown(first, one, 20_000);
          await waitForShown(second, one, 20_000);
          await waitForStatus(second, 'ready');

          // The other way round.
          await send(second, 'Count to 3.');
          const two = [...one, ['user', 'Count to 3.'], ['assistant', countingReply(3)]];
          await waitForShown(second, two, 15_000);
          await waitForShown(first, two, 15_000);
          await waitForStatus(first, 'ready');
          await shotFirst('followed');

          // And back: the first page's transport reads its own reply only.
          await send(first, 'Count to 4.');
          const three = [...two, ['user', 'Count to 4.'], ['assistant', countingReply(4)]];
          await waitForShown(first, three, 15_000);
          await waitForShown(second, three, 15_000);

          const persisted = await persistedMessages(suite.server, chatId);
          assert.deepEqual(
            persisted.map((m) => [m.role, textOf(m)]),
            three,
          );
          const ids = persisted.map((m) => m.id);
          for (const page of [first, second]) {
            assert.deepEqual((await shownMessages(page)).map((m) => m.id), ids, 'the same messages, same ids');
          }
        });
      });
    });
  }

  // A tab that did not follow (hidden: it asks nothing) sends after the other tab's turn ended:
  // the Trigger transport would read from its old cursor, through that turn, into its reply.
  test('a tab that missed a turn reads its own reply only over the trigger transport', { timeout: 60_000 }, async () => {
    const chatId = newChatId('tabs-missed');
    await withPage(suite, 'tabs-missed-a', async (first, shotFirst) => {
      await withPage(suite, 'tabs-missed-b', async (second) => {
        await openChat(first, suite.server, { chatId, transport: 'trigger' });
        await openChat(second, suite.server, { chatId, transport: 'trigger' });
        await waitForStatus(first, 'ready');
        await waitForStatus(second, 'ready');
        await first.evaluate(() => {
          Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
          document.dispatchEvent(new Event('visibilitychange'));
        });

        await send(second, 'Count to 3.');
        await waitForShown(second, [['user', 'Count to 3.'], ['assistant', countingReply(3)]], 15_000);
        await waitForStatus(second, 'ready');

        await send(first, 'Count to 4.');
        const samples = await sampleReply(first, { until: (s) => s.status === 'ready' && s.text.length > 0, everyMs: 40 });
        const foreign = samples.filter((s) => s.text.includes(countingReply(3)));
        assert.deepEqual(foreign, [], 'the other tab\'s reply never shows as this one');
        assert.equal(samples.at(-1).text, countingReply(4));
        await shotFirst('own-reply');

        // Visible again, it catches up with the history.
        await first.evaluate(() => {
          Object.defineProperty(document, 'visibilityState', { value: 'visible', configurable: true });
          document.dispatchEvent(new Event('visibilitychange'));
        });
        const all = [
          ['user', 'Count to 3.'],
          ['assistant', countingReply(3)],
          ['user', 'Count to 4.'],
          ['assistant', countingReply(4)],
        ];
        await waitForShown(first, all, 15_000);
        await waitForShown(second, all, 15_000);
      });
    });
  });
});
