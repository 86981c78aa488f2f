// The page for keyboard and screen-reader users: landmarks, a name on every button, the focus back
// in the message box after Send, Stop, Approve and Deny, a visible focus ring, and no motion when
// the system asks for less.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { newChatId, openChat, PHONE, send, setupSuite, waitForStatus, withPage } from '../support/harness.js';

function focusedId(page) {
  return page.evaluate(() => document.activeElement?.id);
}

async function assertFocusInPrompt(page, after) {
  await page.waitForFunction(() => document.activeElement?.id === 'prompt', null, { timeout: 5_000 }).catch(() => {});
  assert.equal(await focusedId(page), 'prompt', `focus back in the message box after ${after}`);
}

describe('accessibility', () => {
  let suite;
  before(async () => {
    suite = await setupSuite();
  });
  after(async () => {
    await suite?.teardown();
  });

  test('landmarks, named buttons, a visible focus', { timeout: 60_000 }, async () => {
    await withPage(suite, 'a11y-landmarks', async (page, shot) => {
      await openChat(page, suite.server, { chatId: newChatId('a11y'), transport: 'ai-sdk' });
      await waitForStatus(page, 'ready');
      await send(page, 'Show me some markdown.');
      await waitForStatus(page, 'ready');
      await page.getByRole('main').waitFor();
      await page.getByRole('complementary', { name: 'Chats' }).waitFor();
      await page.getByRole('navigation', { name: 'Your chats' }).waitFor();
      await page.getByRole('log', { name: 'Messages' }).waitFor();
      await page.getByRole('form', { name: 'Send a message' }).waitFor();
      const unnamed = await page.evaluate(() =>
        Array.from(document.querySelectorAll('button'))
          .filter((button) => !(button.getAttribute('aria-label') || button.textContent).trim())
          .map((button) => button.outerHTML),
      );
      assert.deepEqual(unnamed, [], 'every button has a name');

      // Keyboard focus shows: Tab from the message box onto the buttons of the page.
      await page.getByRole('textbox', { name: 'Message' }).focus();
      await page.keyboard.press('Shift+Tab');
      const ring = await page.evaluate(() => {
        const style = getComputedStyle(document.activeElement);
        return { tag: document.activeElement.tagName, style: style.outlineStyle, width: parseFloat(style.outlineWidth) };
      });
      assert.equal(ring.style, 'solid', `a focus ring on the focused ${ring.tag}`);
      assert.ok(ring.width >= 2, `a ring wide enough to see: ${ring.width}px`);
      await shot('focus-ring');
    });
  });

  for (const transport of ['ai-sdk', 'trigger']) {
    test(`over the ${transport} transport, the focus returns to the message box after Send, Stop, Approve and Deny`, { timeout: 90_000 }, async () => {
      await withPage(suite, `a11y-focus-${transport}`, async (page, shot) => {
        await openChat(page, suite.server, { chatId: newChatId(`a11y-focus-${transport}`), transport });
        await waitForStatus(page, 'ready');
        await send(page, 'Count to 30 slowly.');
        await assertFocusInPrompt(page, 'Send');
        await waitForStatus(page, 'streaming');
        await page.getByRole('button', { name: 'Stop' }).click();
        await waitForStatus(page, 'ready');
        await assertFocusInPrompt(page, 'Stop');

        for (const verdict of ['Approve', 'Deny']) {
          await send(page, 'Please roll the dice.');
          const group = page.getByRole('group', { name: 'Approve the call of roll_dice?' });
          await group.waitFor();
          await waitForStatus(page, 'ready');
          await group.getByRole('button', { name: verdict }).click();
          await assertFocusInPrompt(page, verdict);
          await waitForStatus(page, 'ready');
        }
        await shot('done');
      });
    });
  }

  test('reduced motion: no blinking cursor, no sliding drawer', { timeout: 60_000 }, async () => {
    await withPage(
      suite,
      'a11y-reduced-motion',
      async (page, shot) => {
        await openChat(page, suite.server, { chatId: newChatId('a11y-motion'), transport: 'ai-sdk' });
        await waitForStatus(page, 'ready');
        await send(page, 'Count to 30 slowly.');
        await waitForStatus(page, 'streaming');
        await page.locator('.markdown.streaming').waitFor();
        const cursor = await page.evaluate(() => {
          const last = document.querySelector('.markdown.streaming > :last-child');
          return getComputedStyle(last, '::after').animationName;
        });
        assert.equal(cursor, 'none', 'the cursor does not blink');
        await page.getByRole('button', { name: 'Stop' }).click();
        await waitForStatus(page, 'ready');
        const drawer = await page.locator('.sidebar').evaluate((element) => getComputedStyle(element).transitionDuration);
        assert.match(drawer, /^0s(, 0s)*$/, `the drawer does not slide: ${drawer}`);
        await page.getByRole('button', { name: 'Chats' }).click();
        await page.getByRole('navigation', { name: 'Your chats' }).waitFor();
        await shot('drawer');
      },
      { viewport: PHONE, reducedMotion: 'reduce' },
    );
  });
});
