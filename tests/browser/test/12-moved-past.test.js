// An approval request the user moved past: they send a new message instead of pressing Approve or
// Deny. The server closes the call as denied ("skipped: the user sent a new message"), the page
// shows it skipped with no buttons left, live and after a reload, and the tool never runs.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  newChatId,
  openChat,
  persistedMessages,
  send,
  setupSuite,
  shownMessages,
  waitForStatus,
  withPage,
} from '../support/harness.js';

describe('approvals a user moved past', () => {
  let suite;
  before(async () => {
    suite = await setupSuite();
  });
  after(async () => {
    await suite?.teardown();
  });

  for (const transport of ['ai-sdk', 'trigger']) {
    test(`a new message skips the waiting roll_dice call over the ${transport} transport`, { timeout: 60_000 }, async () => {
      await withPage(suite, `moved-past-${transport}`, async (page, shot) => {
        const chatId = newChatId(`moved-past-${transport}`);
        await openChat(page, suite.server, { chatId, transport });
        await waitForStatus(page, 'ready');
        await send(page, 'Please roll the dice.');
        await page.getByRole('group', { name: 'Approve the call of roll_dice?' }).waitFor();
        await waitForStatus(page, 'ready');
        await shot('approval-requested');

        await send(page, 'Never mind, say something else.');
        const skipped = page.locator('section.tool[data-skipped="true"]');
        await skipped.waitFor();
        await waitForStatus(page, 'ready');
        await shot('skipped');

        const check = async (when) => {
          assert.equal(await page.getByRole('button', { name: 'Approve' }).count(), 0, `no Approve ${when}`);
          assert.equal(await page.getByRole('button', { name: 'Deny' }).count(), 0, `no Deny ${when}`);
          assert.match(await skipped.innerText(), /skipped/i, `shown as skipped ${when}`);
          const shown = await shownMessages(page);
          assert.deepEqual(
            shown.map((m) => m.role),
            ['user', 'assistant', 'user', 'assistant'],
            `${when}: ${JSON.stringify(shown)}`,
          );
          assert.deepEqual(shown[1].tools, [{ name: 'roll_dice', state: 'output-denied' }], when);
          assert.equal(shown[3].text, 'This is the mock model.', `the next reply came ${when}`);
        };
        await check('live');

        await page.reload();
        await page.locator('.chat').waitFor();
        await waitForStatus(page, 'ready');
        await skipped.waitFor();
        await check('after a reload');
        await shot('skipped-after-reload');

        const persisted = await persistedMessages(suite.server, chatId);
        const part = persisted[1].parts.find((p) => p.type === 'tool-roll_dice');
        assert.equal(part.state, 'output-denied');
        assert.equal(part.approval.approved, false);
        assert.equal(part.approval.reason, 'skipped: the user sent a new message');
        assert.equal(part.output, undefined, 'the tool never ran');
      });
    });
  }
});
