// One chat open in two browser contexts (two tabs, two devices): a turn started in either shows
// in the other within a few seconds, its reply streaming there too, and neither ever shows the
// other's reply as its own.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  countingReply,
  lastAssistantText,
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

/**
 * The replies shown that are not (a beginning of) the answer to the message before them: each
 * message here is "Count to N", answered by `countingReply(N)`, so a reply holding any of another
 * turn's words shows up.
 */
function foreignReplies(shown) {
  const wrong = [];
  shown.forEach((message, i) => {
    const asked = shown[i - 1]?.text.match(/count to (\d+)/i);
    if (message.role !== 'assistant' || !asked) return;
    if (!countingReply(Number(asked[1])).startsWith(message.text)) wrong.push([shown[i - 1].text, message.text]);
  });
  return wrong;
}

/** Watches `pages` every 40 ms until `done()` resolves; returns every foreign reply seen. */
async function watchForForeignReplies(pages, done) {
  const seen = [];
  let finished = false;
  const watching = (async () => {
    while (!finished) {
      for (const page of pages) seen.push(...foreignReplies(await shownMessages(page)));
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
  })();
  try {
    await done();
  } finally {
    finished = true;
    await watching;
  }
  return seen;
}

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

  // The race the cursor move alone cannot win: a send made while the other tab's turn still runs
  // (this tab has not noticed it: hidden, it asks nothing), then two sends at the same moment
  // from both tabs. Every reply shown is its own message's, live and after a reload.
  for (const transport of ['trigger', 'ai-sdk']) {
    test(`sends close together show no foreign reply over the ${transport} transport`, { timeout: 90_000 }, async () => {
      const chatId = newChatId(`tabs-race-${transport}`);
      await withPage(suite, `tabs-race-${transport}-a`, async (first, shotFirst) => {
        await withPage(suite, `tabs-race-${transport}-b`, async (second, shotSecond) => {
          await openChat(first, suite.server, { chatId, transport });
          await openChat(second, suite.server, { chatId, transport });
          await waitForStatus(first, 'ready');
          await waitForStatus(second, 'ready');
          const setVisible = (page, visible) =>
            page.evaluate((state) => {
              Object.defineProperty(document, 'visibilityState', { value: state, configurable: true });
              document.dispatchEvent(new Event('visibilitychange'));
            }, visible ? 'visible' : 'hidden');

          await setVisible(second, false);
          const whileRunning = await watchForForeignReplies([first, second], async () => {
            await send(first, 'Count to 12 slowly.');
            await waitForStatus(first, 'streaming');
            await first.locator('article.message[data-role="assistant"]').filter({ hasText: 'Counting to 12: 1 2' }).waitFor();
            await send(second, 'Count to 3.');
            const ownReply = second.locator('article.message[data-role="assistant"]').filter({ hasText: countingReply(3) });
            await ownReply.or(second.locator('.chat[data-status="error"]')).first().waitFor({ timeout: 30_000 });
            await second.locator('.chat[data-status="ready"], .chat[data-status="error"]').waitFor();
            assert.equal(await second.locator('.chat').getAttribute('data-status'), 'ready', await second.locator('.error').allInnerTexts());
            await waitForStatus(first, 'ready');
          });
          assert.deepEqual(whileRunning, [], 'no reply shows another turn\'s words');
          assert.equal(await lastAssistantText(second), countingReply(3));
          await shotSecond('own-reply-after-a-running-turn');
          await setVisible(second, true);

          const history = async () => (await persistedMessages(suite.server, chatId)).map((m) => [m.role, textOf(m)]);
          const settled = await history();
          assert.equal(settled.length, 4, JSON.stringify(settled));
          await waitForShown(first, settled, 15_000);
          await waitForShown(second, settled, 15_000);

          const atOnce = await watchForForeignReplies([first, second], async () => {
            await Promise.all([send(first, 'Count to 5.'), send(second, 'Count to 6.')]);
            const reply = (page, n) => page.locator('article.message[data-role="assistant"]').filter({ hasText: countingReply(n) });
            await Promise.all([reply(first, 5).waitFor(), reply(second, 6).waitFor()]);
            await Promise.all([waitForStatus(first, 'ready'), waitForStatus(second, 'ready')]);
          });
          assert.deepEqual(atOnce, [], 'no reply shows another turn\'s words');
          const all = await history();
          assert.equal(all.length, 8, JSON.stringify(all));
          assert.deepEqual(foreignReplies(all.map(([role, text]) => ({ role, text }))), []);
          await waitForShown(first, all, 20_000);
          await waitForShown(second, all, 20_000);
          await shotFirst('both-sent-at-once');
          for (const page of [first, second]) {
            await page.reload();
            await waitForStatus(page, 'ready');
            await waitForShown(page, all, 10_000);
          }
        });
      });
    });
  }
});
