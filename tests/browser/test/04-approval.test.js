// Tool approvals: chatfn runs with CHATFN_APPROVAL_TOOLS=roll_dice, so the model's roll_dice call
// waits for a person. Approve: the tool runs, its output shows, the model follows up. Deny: the
// tool never runs and the model is told.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  newChatId,
  openChat,
  persistedMessages,
  send,
  setupSuite,
  shownMessages,
  textOf,
  waitForStatus,
  withPage,
} from '../support/harness.js';

describe('tool approvals', () => {
  let suite;
  before(async () => {
    suite = await setupSuite();
  });
  after(async () => {
    await suite?.teardown();
  });

  const cases = [
    { transport: 'ai-sdk', approve: true },
    { transport: 'ai-sdk', approve: false },
    { transport: 'trigger', approve: true },
    { transport: 'trigger', approve: false },
  ];
  for (const { transport, approve } of cases) {
    const verb = approve ? 'approve' : 'deny';
    test(`${verb} a roll_dice call over the ${transport} transport`, { timeout: 60_000 }, async () => {
      await withPage(suite, `${verb}-${transport}`, async (page, shot) => {
        const chatId = newChatId(`${verb}-${transport}`);
        await openChat(page, suite.server, { chatId, transport });
        await waitForStatus(page, 'ready');
        await send(page, 'Please roll the dice.');

        const tool = page.getByRole('region', { name: 'Tool call roll_dice' });
        await page.locator('section.tool[data-state="approval-requested"]').waitFor();
        await waitForStatus(page, 'ready');
        const group = page.getByRole('group', { name: 'Approve the call of roll_dice?' });
        await group.waitFor();
        assert.match(await tool.innerText(), /"sides": 6/, 'the call input is shown');
        await shot('approval-requested');

        await group.getByRole('button', { name: approve ? 'Approve' : 'Deny' }).click();
        const finalState = approve ? 'output-available' : 'output-denied';
        await page.locator(`section.tool[data-state="${finalState}"]`).waitFor();
        await page.locator('article.message[data-role="assistant"] .text-part').first().waitFor();
        await waitForStatus(page, 'ready');
        // The follow-up text is complete once the status is ready.
        const shown = await shownMessages(page);
        await shot(approve ? 'approved' : 'denied');

        assert.equal(shown.length, 2, `the answer continues the same message: ${JSON.stringify(shown)}`);
        const answer = shown[1];
        assert.deepEqual(answer.tools, [{ name: 'roll_dice', state: finalState }]);
        assert.match(answer.text, /^The tool answered /);
        const toolText = await tool.innerText();
        if (approve) {
          assert.match(toolText, /Output/i);
          assert.match(toolText, /"rolls"/);
          assert.match(toolText, /Approved/);
        } else {
          assert.doesNotMatch(toolText, /"rolls"/);
          assert.match(toolText, /Denied/);
        }
        assert.equal(await page.getByRole('button', { name: 'Approve' }).count(), 0, 'no buttons left');

        const persisted = await persistedMessages(suite.server, chatId);
        assert.deepEqual(
          shown.map((m) => [m.id, m.role, m.text]),
          persisted.map((m) => [m.id, m.role, textOf(m)]),
        );
        const part = persisted[1].parts.find((p) => p.type === 'tool-roll_dice');
        assert.equal(part.state, finalState);
        assert.equal(part.approval.approved, approve);
        if (approve) assert.ok(Array.isArray(part.output.rolls), 'the tool ran on the server');
        else assert.equal(part.output, undefined, 'the tool never ran');
      });
    });
  }
});
